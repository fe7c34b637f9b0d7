"""EdgePersona demo: a Kivy app that embeds the SDK exactly as an app developer would.

``edgepersona app`` starts it. The modules without Kivy (``settings``, ``catalog``,
``simulator``, ``session``, ``views``) hold everything the app knows and does, so they are
tested without a window; the screens only show what a ``Session`` gives them.
"""

import os

# Kivy parses sys.argv when it is imported unless told not to; this app's options belong to
# ``edgepersona app``'s own parser. Set before any module of this package imports Kivy.
os.environ.setdefault("KIVY_NO_ARGS", "1")

__all__: list[str] = []

"""One module per screen; each screen's layout is the ``.kv`` file of the same name.

Importing this package defines the screen classes, which Kivy registers for the kv rules.
"""

from .consent import ConsentScreen
from .home import HomeScreen
from .insights import InsightsScreen
from .offers import OffersScreen
from .privacy import PrivacyScreen
from .settings import SettingsScreen

__all__ = [
    "ConsentScreen",
    "HomeScreen",
    "InsightsScreen",
    "OffersScreen",
    "PrivacyScreen",
    "SettingsScreen",
]

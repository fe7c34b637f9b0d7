"""The folder that buildozer packages for Android: ``edgepersona app --android-source DIR``.

Buildozer wants a folder with ``main.py`` and the app's own packages as plain source; its
third-party requirements (Kivy, numpy, httpx, sqlite-utils...) are listed in
``buildozer.spec``. onnxruntime has no Android build: it is left out, and the SDK runs the
persona model with its numpy evaluator instead (the same graph, to 1e-5).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

__all__ = ["PACKAGES", "prepare"]

# What the app imports: the SDK, the generator behind the simulated day, and the app.
PACKAGES = ("sdk", "edge_models", "demo_app")
MAIN = '''"""Android entry point written by `edgepersona app --android-source`."""

from edgepersona.demo_app.app import EdgePersonaApp

EdgePersonaApp().run()
'''


def prepare(out_dir: Path) -> Path:
    """Write ``main.py`` and ``edgepersona/<part>/`` (source, kv, bundle) into ``out_dir``.

    An existing ``out_dir/edgepersona`` is replaced, so the folder always matches the
    installed packages. Returns the path of ``main.py``.
    """
    package = out_dir / "edgepersona"
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""EdgePersona, packaged for Android."""\n')
    for part in PACKAGES:
        source = Path(str(resources.files(f"edgepersona.{part}")))
        shutil.copytree(source, package / part, ignore=shutil.ignore_patterns("__pycache__"))
    main = out_dir / "main.py"
    main.write_text(MAIN)
    return main

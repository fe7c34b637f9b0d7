"""``edgepersona app``: start the Kivy demo, or draw every screen to PNG files.

Kivy is imported only when the command runs (every ``edgepersona`` command loads this module
to build its help), after the window and Kivy's own settings are configured.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .catalog import PERSONA_COLOURS
from .settings import SIGNAL_SOURCES

__all__ = ["register"]

_EXAMPLE = """example:
  edgepersona app                                   # a simulated commuter's day on a desktop
  edgepersona app --persona night_owl_gamer --backend-url http://127.0.0.1:8000 \
      --public-key /etc/edgepersona/registry-key.pub.json
  edgepersona app --screenshots docs/screenshots    # every screen to PNG (Xvfb if no display)
  edgepersona app --android-source build/android && buildozer android debug

The window is 400x800, like a phone. Settings (the sync server, the simulated persona and its
speed) can be changed in the app and are kept in its data directory."""
WINDOW = (400, 800)
SCREENSHOT_DENSITY = 2  # screenshots are drawn at twice the size, sharp on any screen


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "app",
        help="start the Kivy demo app that embeds the SDK (or save screenshots of it)",
        description="The EdgePersona demo app: consent, an adaptive home screen, offers, "
        "insights, a privacy centre and sync, on a simulated day or this device's signals.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, help="keep the app's data here")
    parser.add_argument("--signals", choices=SIGNAL_SOURCES, help="simulated day or this device")
    parser.add_argument(
        "--persona", choices=tuple(PERSONA_COLOURS), help="the persona of the simulated day"
    )
    parser.add_argument("--backend-url", help="the sync service; sync also needs the user's yes")
    parser.add_argument(
        "--public-key",
        help="the key model bundles must be signed with: base64, or the .pub.json file that "
        "'edgepersona backend keygen' wrote",
    )
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="save every screen here")
    parser.add_argument(
        "--android-source",
        type=Path,
        metavar="DIR",
        help="write the folder buildozer packages for Android (see buildozer.spec)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    chosen = {
        "signals": args.signals,
        "persona": args.persona,
        "backend_url": args.backend_url,
        "public_key": _public_key(args.public_key),
    }
    chosen = {key: value for key, value in chosen.items() if value is not None}
    # Kivy's own log mode sends everything written to stderr into its log: keep our errors
    # where a terminal user sees them.
    os.environ.setdefault("KIVY_LOG_MODE", "MIXED")
    if args.android_source is not None:
        from .android import prepare

        print(prepare(args.android_source))
        return 0
    if args.screenshots is not None:
        return _screenshots(args.screenshots, chosen)
    _configure_kivy(*WINDOW)
    from .app import EdgePersonaApp

    EdgePersonaApp(data_dir=args.data_dir, overrides=chosen).run()
    return 0


def _public_key(value: str | None) -> str | None:
    """A key file's ``public_key``, or the value itself (base64)."""
    if value is None or not value.endswith(".json"):
        return value
    return str(json.loads(Path(value).read_text(encoding="utf-8"))["public_key"])


def _screenshots(out_dir: Path, chosen: dict[str, str]) -> int:
    width, height = (side * SCREENSHOT_DENSITY for side in WINDOW)
    with ExitStack() as stack:
        if not os.environ.get("DISPLAY"):
            from .headless import virtual_display

            os.environ["DISPLAY"] = stack.enter_context(virtual_display(width, height))
        # Kivy keeps a config and logs in its home: a throwaway one, not the user's.
        os.environ["KIVY_HOME"] = stack.enter_context(tempfile.TemporaryDirectory())
        os.environ["KIVY_METRICS_DENSITY"] = str(SCREENSHOT_DENSITY)
        os.environ["KIVY_NO_CONSOLELOG"] = "1"
        _configure_kivy(width, height, fast=True)
        from .screenshots import take_screenshots
        from .settings import AppSettings

        settings = AppSettings(signals="simulated", persona="commuter").with_changes(**chosen)
        for path in take_screenshots(out_dir, settings):
            print(path)
    return 0


def _configure_kivy(width: int, height: int, *, fast: bool = False) -> None:
    """Window size (and no frame pacing for screenshots), before Kivy creates its window."""
    from kivy.config import Config

    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("input", "mouse", "mouse,disable_multitouch")
    if fast:
        Config.set("graphics", "maxfps", "0")

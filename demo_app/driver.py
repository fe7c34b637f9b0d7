"""Run the app one frame at a time and act on it as a user would: for tests and screenshots.

``Driver(app)`` does what ``App.run()`` does before it enters Kivy's loop, then each call
advances frames explicitly, so a test decides when time passes. Taps are real touch events
sent through the window, except inside scroll views, which hold a touch back for 0.2 s of
real time to tell a tap from a scroll: there the button's own press and release are fired.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.base import EventLoop
from kivy.input.motionevent import MotionEvent
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

__all__ = ["Driver"]


class Driver:
    """Drives a started app. ``close()`` stops it but keeps the window for the next app."""

    def __init__(self, app: App) -> None:
        self.app = app
        app._run_prepare()  # App.run() without entering the event loop
        self.frames()

    def frames(self, count: int = 3) -> None:
        for _ in range(count):
            EventLoop.idle()

    def until(self, condition: Callable[[], bool], frames: int = 600) -> None:
        """Advance frames until ``condition()`` holds (e.g. a background sync finished)."""
        for _ in range(frames):
            if condition():
                return
            EventLoop.idle()
        raise AssertionError(f"still not true after {frames} frames: {condition}")

    def tap(self, widget: Widget) -> None:
        """Press and release ``widget`` like a finger would."""
        scroller = _scroll_view_of(widget)
        if scroller is not None:
            if not _in_view(scroller, widget):
                scroller.scroll_to(widget, padding=0, animate=False)
                self.frames(1)
            assert isinstance(widget, ButtonBehavior), f"{widget} cannot be pressed"
            widget.trigger_action(duration=0)
        else:
            touch = _Finger(*widget.to_window(*widget.center))
            EventLoop.post_dispatch_input("begin", touch)
            EventLoop.post_dispatch_input("end", touch)
        self.frames(2)

    def find(self, kind: type, root: Widget | None = None, **attributes: object) -> Widget:
        """The one widget of this class (and these property values) on screen."""
        found = list(self.find_all(kind, root, **attributes))
        assert len(found) == 1, f"expected one {kind.__name__} {attributes}, found {len(found)}"
        return found[0]

    def find_all(
        self, kind: type, root: Widget | None = None, **attributes: object
    ) -> Iterator[Widget]:
        for top in [root] if root is not None else list(_window().children):
            for widget in top.walk(restrict=True):
                if isinstance(widget, kind) and all(
                    getattr(widget, name, None) == value for name, value in attributes.items()
                ):
                    yield widget

    def screenshot(self, path: Path) -> Path:
        """Save what the window shows as a PNG at ``path``."""
        self.frames(2)
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = _window().screenshot(name=str(path.with_name(f"{path.stem}-tmp.png")))
        os.replace(saved, path)
        return path

    def close(self) -> None:
        """What ``App.stop()`` does, minus closing the window (one window per process)."""
        self.app.dispatch("on_stop")
        window = _window()
        for child in list(window.children):
            window.remove_widget(child)
        self.frames(1)


class _Finger(MotionEvent):
    """A touch at a window position, dispatched like one from the touch screen."""

    def __init__(self, x: float, y: float) -> None:
        window = _window()
        position = {"x": x / (window.width - 1.0), "y": y / (window.height - 1.0)}
        super().__init__("driver", 1, position, is_touch=True, type_id="touch")
        self.profile = ["pos"]

    def depack(self, args: dict[str, float]) -> None:
        self.sx, self.sy = args["x"], args["y"]
        super().depack(args)


def _window() -> Any:
    """Kivy's window; imported late, because importing it opens it (not on import of this)."""
    from kivy.core.window import Window

    return Window


def _in_view(scroller: ScrollView, widget: Widget) -> bool:
    """Whether all of ``widget`` shows inside the scroll view (no need to scroll to it)."""
    left, bottom = widget.to_window(widget.x, widget.y)
    right, top = widget.to_window(widget.right, widget.top)
    s_left, s_bottom = scroller.to_window(scroller.x, scroller.y)
    s_right, s_top = scroller.to_window(scroller.right, scroller.top)
    return s_left <= left and right <= s_right and s_bottom <= bottom and top <= s_top


def _scroll_view_of(widget: Widget) -> ScrollView | None:
    parent = widget.parent
    while parent is not None and parent is not parent.parent:
        if isinstance(parent, ScrollView):
            return parent
        parent = parent.parent
    return None

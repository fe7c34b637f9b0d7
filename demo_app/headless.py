"""A virtual X display (Xvfb) for running the app without a screen: tests and screenshots.

``Xvfb -displayfd`` picks a free display number and writes it once the server accepts
connections, so nothing polls or sleeps while it starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["virtual_display"]


@contextmanager
def virtual_display(width: int, height: int) -> Iterator[str]:
    """Start Xvfb with one ``width`` x ``height`` screen; yields its name (``":99"``).

    Raises:
        RuntimeError: Xvfb is not installed (Debian: ``apt-get install xvfb``) or did not start.
    """
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise RuntimeError(
            "Xvfb is not installed; install it (apt-get install xvfb) or set DISPLAY"
        )
    read, write = os.pipe()
    process = subprocess.Popen(
        [
            xvfb,
            "-displayfd",
            str(write),
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    try:
        if not number:
            raise RuntimeError(f"Xvfb did not start (exit status {process.wait()})")
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(timeout=10)

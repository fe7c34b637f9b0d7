"""The ``edgepersona`` command: one console script, subcommands contributed by each part.

Each part of the system (SDK, edge models, backend, demo app) registers its subcommands
under the ``edgepersona.commands`` entry-point group, so the SDK never imports the backend
and a part whose extra is not installed simply says how to install it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from .errors import EdgePersonaError

__all__ = ["build_parser", "main", "positive_int"]


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every installed part's subcommands."""
    parser = argparse.ArgumentParser(
        prog="edgepersona",
        description="Segment-of-one personalization that stays on the device.",
        epilog="Run 'edgepersona COMMAND --help' for a command's options and an example.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for point in sorted(entry_points(group="edgepersona.commands"), key=lambda p: p.name):
        try:
            register = point.load()
        except ImportError as exc:
            unavailable = commands.add_parser(
                point.name, help=f"(unavailable: {exc.name or exc} is not installed)"
            )
            unavailable.set_defaults(run=_missing(point.name, exc))
            continue
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; domain errors print one line and exit 1, usage errors exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EdgePersonaError as exc:
        print(f"edgepersona {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgepersona {args.command}: interrupted", file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    """An argparse type for counts (devices, weeks, workers), so zero is a usage error."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _missing(name: str, exc: ImportError):  # type: ignore[no-untyped-def]
    def run(_: argparse.Namespace) -> int:
        print(
            f"edgepersona {name}: needs a package that is not installed ({exc}); "
            "install it with: pip install 'edgepersona[all]'",
            file=sys.stderr,
        )
        return 1

    return run


if __name__ == "__main__":
    sys.exit(main())

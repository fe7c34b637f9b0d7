"""Reading trace files (CSV with a header, or JSON Lines), one signal per row, streaming.

Parsing is separate from applying: ``records`` yields raw rows with their line numbers,
``parse`` turns one into a ``Signal`` or raises ``InvalidSignalError`` naming the field.
Real exports are messy, so the reader is lenient where meaning is clear (a byte-order mark,
blank lines, unknown columns, ``Z`` for UTC, case in kinds and categories, gzip) and strict
where it is not (a naive ISO time with no zone to read it in, a missing coordinate).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import operator
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

from ._localtime import zone as _zone
from .errors import InvalidSignalError, TraceError

KINDS = ("location", "app", "screen", "event")
_CATEGORY_ALIASES = {"music/video": "music_video", "maps/travel": "maps_travel"}
_MAX_LINE = 64 * 1024  # a longer JSON line is not a signal; refuse it without parsing
_COLUMNS = (
    "ts",
    "kind",
    "lat",
    "lon",
    "accuracy_m",
    "speed_mps",
    "app",
    "category",
    "name",
    "value",
    "duration_s",
    "tz",
)


class Signal(NamedTuple):
    kind: str
    ts: float
    tz: str | None  # the row's zone; None means the replay's default
    args: tuple[Any, ...]  # positional arguments of the matching EdgePersona method
    kwargs: dict[str, Any]


def open_trace(path: Path) -> tuple[io.TextIOWrapper, str]:
    """The trace as a text stream (``.gz`` transparently, BOM skipped) and its format.

    The format comes from the suffix (``.csv``, ``.jsonl``/``.ndjson``/``.json``) or, failing
    that, from the first character: ``{`` means JSON Lines.
    """
    try:
        raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
        head = raw.peek(64)[:64] if hasattr(raw, "peek") else b""
    except (OSError, EOFError) as exc:
        raise TraceError(
            f"cannot read trace {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    name = path.name.removesuffix(".gz").lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        kind = "jsonl"
    elif name.endswith(".csv"):
        kind = "csv"
    else:
        kind = "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=""), kind


def records(stream: IO[str], kind: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, row)`` for each row; a row that cannot be read is a reason string."""
    if kind == "jsonl":
        return _json_lines(stream)
    header, rows = _csv_table(stream)
    return (
        (number, cells if type(cells) is str else dict(zip(header, cells, strict=False)))
        for number, cells in rows
    )


def signals(
    stream: IO[str], kind: str, default_tz: str | None
) -> Iterator[tuple[int, Signal | str]]:
    """``(line number, signal)`` for each row, or ``(line number, reason)`` for a row that
    cannot be read or parsed: ``records`` then ``parse``, with a faster path for CSV."""
    if kind == "jsonl":
        for number, row in _json_lines(stream):
            if isinstance(row, str):
                yield number, row
                continue
            try:
                yield number, parse(row, default_tz)
            except InvalidSignalError as exc:
                yield number, str(exc)
        return
    header, rows = _csv_table(stream)
    fast = _CsvParser(header, default_tz).parse
    for number, cells in rows:
        if isinstance(cells, str):
            yield number, cells
            continue
        signal = fast(cells)
        if signal is None:  # anything unusual, errors included: the one general parser
            try:
                signal = parse(dict(zip(header, cells, strict=False)), default_tz)
            except InvalidSignalError as exc:
                yield number, str(exc)
                continue
        yield number, signal


def _json_lines(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        if len(line) > _MAX_LINE:
            yield number, f"line longer than {_MAX_LINE} characters"
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg})"
            continue
        yield number, row if isinstance(row, dict) else "not a JSON object"


def _csv_table(stream: IO[str]) -> tuple[list[str], Iterator[tuple[int, list[str] | str]]]:
    """The header (lower case) and ``(line number, cells or reason)`` for each row."""
    reader = csv.reader(stream)
    try:
        header = [column.strip().lower() for column in next(reader)]
    except StopIteration:
        return [], iter(())
    except csv.Error as exc:
        raise TraceError(f"the CSV header cannot be read: {exc}") from exc
    if "ts" not in header or "kind" not in header:
        raise TraceError(
            f"the CSV header must name at least 'ts' and 'kind' columns; found {header[:12]}"
        )
    return header, _csv_cells(reader, len(header))


def _csv_cells(reader: Any, width: int) -> Iterator[tuple[int, list[str] | str]]:
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, f"malformed CSV ({exc})"
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) > width:
            yield reader.line_num, f"{len(cells)} cells but the header has {width} columns"
            continue
        yield reader.line_num, cells  # a short row's missing cells are missing fields


class _CsvParser:
    """``parse`` for the common CSV row, on cells by position (columns resolved once).

    It returns ``None`` for anything it is not sure of (a bad or unusual cell, a kind in
    another case), and the caller then runs the general ``parse`` on the row, so reasons
    and edge cases have one implementation; a test checks that both agree.
    """

    def __init__(self, header: list[str], default_tz: str | None) -> None:
        self._width = len(header)
        position = {name: i for i, name in enumerate(header)}  # a repeated column: the last
        # Every known column in one C call; one the header lacks reads the empty cell that
        # ``parse`` appends past the row's end.
        self._pick = operator.itemgetter(*(position.get(name, self._width) for name in _COLUMNS))
        self._default_tz = default_tz

    def parse(self, cells: list[str]) -> Signal | None:
        if len(cells) < self._width:
            cells = cells + [""] * (self._width - len(cells))
        cells.append("")
        ts, kind, lat, lon, accuracy, speed, app, category, name, value, duration, tz = self._pick(
            cells
        )
        tz = tz or self._default_tz
        try:
            try:
                ts = float(ts)
            except ValueError:
                ts, offset_zone = _timestamp(ts, tz)
                tz = tz or offset_zone
            if kind == "location":
                fix = (
                    float(lat),
                    float(lon),
                    float(accuracy) if accuracy else None,
                    float(speed) if speed else None,
                )
                return _new(Signal, (kind, ts, tz, fix, _NO_KEYWORDS))
            if kind == "app":
                if not app:
                    return None
                if category:
                    category = category.strip().lower()
                    category = _CATEGORY_ALIASES.get(category, category)
                keywords = {
                    "category": category or None,
                    "duration_s": float(duration) if duration else None,
                }
                return _new(Signal, (kind, ts, tz, (app.strip(),), keywords))
            if not name:
                return None
            if kind == "screen":
                keywords = {"duration_s": float(duration) if duration else None}
                return _new(Signal, (kind, ts, tz, (name.strip(),), keywords))
            if kind == "event":
                event = (name.strip(), float(value) if value else None)
                return _new(Signal, (kind, ts, tz, event, _NO_KEYWORDS))
        except (ValueError, InvalidSignalError):
            pass
        return None


# ``tuple.__new__`` makes a NamedTuple without the Python-level ``__new__``: once per row.
_new = tuple.__new__
_NO_KEYWORDS: dict[str, Any] = {}  # shared: the replay only unpacks it, never changes it


def parse(row: dict[str, Any], default_tz: str | None) -> Signal:
    """One raw row to a ``Signal``; raises ``InvalidSignalError`` naming the bad field."""
    kind = row.get("kind")
    if kind not in KINDS:
        kind = _text(row, "kind")
        kind = kind.strip().lower() if kind else kind
        if kind not in KINDS:
            raise InvalidSignalError(
                "kind", f"{kind!r:.40} is unknown; accepted: {', '.join(KINDS)}"
            )
    tz = row.get("tz")
    tz = (tz if type(tz) is str else _text(row, "tz")) or default_tz
    ts, offset_zone = _timestamp(row.get("ts"), tz)
    zone_name = tz or offset_zone
    if kind == "location":
        args = (
            _number(row, "lat", required=True),
            _number(row, "lon", required=True),
            _number(row, "accuracy_m"),
            _number(row, "speed_mps"),
        )
        return Signal(kind, ts, zone_name, args, {})
    if kind == "app":
        category = _text(row, "category")
        if category:
            category = category.strip().lower()
            category = _CATEGORY_ALIASES.get(category, category)
        return Signal(
            kind,
            ts,
            zone_name,
            (_required_text(row, "app"),),
            {"category": category or None, "duration_s": _number(row, "duration_s")},
        )
    name = _required_text(row, "name")
    if kind == "screen":
        return Signal(kind, ts, zone_name, (name,), {"duration_s": _number(row, "duration_s")})
    return Signal(kind, ts, zone_name, (name, _number(row, "value")), {})


def _text(row: dict[str, Any], field: str) -> str | None:
    raw = row.get(field)
    if type(raw) is str:
        return raw or None
    if raw is None:
        return None
    raise InvalidSignalError(field, f"expected text, got {type(raw).__name__}")


def _required_text(row: dict[str, Any], field: str) -> str:
    raw = _text(row, field)
    if raw is None:
        raise InvalidSignalError(field, "missing; this kind of row needs it")
    return raw.strip()


def _number(row: dict[str, Any], field: str, required: bool = False) -> float | None:
    raw = row.get(field)
    if type(raw) is str and raw:
        try:
            return float(raw)
        except ValueError:
            if raw.strip():
                raise InvalidSignalError(field, f"expected a number, got {raw!r:.40}") from None
    elif type(raw) is float or type(raw) is int:
        return float(raw)
    elif raw is not None and raw != "":
        raise InvalidSignalError(field, f"expected a number, got {raw!r:.40}")
    if required:
        raise InvalidSignalError(field, "missing; this kind of row needs it")
    return None


def _timestamp(raw: Any, tz: str | None) -> tuple[float, str | None]:
    """Unix seconds, plus the fixed offset an ISO time carried (used when no tz is given)."""
    if raw is None or raw == "":
        raise InvalidSignalError("ts", "missing; give Unix seconds or ISO-8601 with an offset")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw), None
    if not isinstance(raw, str):
        raise InvalidSignalError("ts", f"expected Unix seconds or ISO-8601, got {raw!r:.40}")
    text = raw.strip()
    try:
        return float(text), None
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidSignalError(
            "ts", f"{text!r:.40} is neither Unix seconds nor ISO-8601 (2026-03-01T08:30:00+01:00)"
        ) from exc
    if moment.tzinfo is None:
        if tz is None:
            raise InvalidSignalError(
                "ts", f"{text!r:.40} has no UTC offset; add one, a tz column, or --tz"
            )
        return moment.replace(tzinfo=_zone(tz).tzinfo).timestamp(), None
    offset = moment.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    name = _OFFSET_NAMES.get(seconds)
    if name is None:  # at most one per minute of offset: the cache stays small
        sign = "-" if seconds < 0 else "+"
        hours, minutes = divmod(abs(seconds) // 60, 60)
        name = _OFFSET_NAMES[seconds] = f"{sign}{hours:02d}:{minutes:02d}"
    return moment.timestamp(), name


_OFFSET_NAMES: dict[int, str] = {}

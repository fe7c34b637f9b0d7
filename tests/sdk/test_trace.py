"""Trace reading: the CSV fast path gives exactly what the general row parser gives."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk import InvalidSignalError, _trace

COLUMNS = [*_trace._COLUMNS, "extra"]
CELLS = [
    "",
    " ",
    "nan",
    "inf",
    "1e400",
    "1_000",
    "0x10",
    "\u0661\u0662",  # Arabic-Indic digits: float() reads them
    "1772438400",
    " 1772438400.25 ",
    "1772438400000",
    "2026-03-02T09:00:00+01:00",
    "2026-03-02T09:00:00Z",
    "2026-03-02T09:00:00",
    "2026-03-02 09:00:00-05:30",
    "48.85",
    " 2.35 ",
    "-200",
    "abc",
    "12",
    "com.whatsapp",
    " com.spotify.music ",
    "Social",
    " MAPS/TRAVEL ",
    "music/video",
    "view",
    "add_to_cart",
    "Europe/Paris",
    "+05:30",
    "Not/AZone",
    "location",
    "LOCATION",
    " app",
    "app",
    "screen",
    "event",
    "teleport",
]
KINDS = ["location", "app", "screen", "event"]


def general(text: str, default_tz: str | None) -> list[tuple[int, str]]:
    """What the replay read before the fast path: a dict per row, then ``parse``."""
    out = []
    for number, row in _trace.records(io.StringIO(text, newline=""), "csv"):
        if isinstance(row, str):
            out.append((number, row))
            continue
        try:
            out.append((number, repr(_trace.parse(row, default_tz))))
        except InvalidSignalError as exc:
            out.append((number, str(exc)))
    return out


def fast(text: str, default_tz: str | None) -> list[tuple[int, str]]:
    return [
        (number, signal if isinstance(signal, str) else repr(signal))
        for number, signal in _trace.signals(io.StringIO(text, newline=""), "csv", default_tz)
    ]


def as_csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# Mostly plausible cells for each column, so that most rows take the fast path and a wrong
# value there shows; any other cell at times, so that the fallback is exercised too.
PLAUSIBLE = {
    "ts": ["1772438400", " 1772438400.25 ", "2026-03-02T09:00:00+01:00", "2026-03-02T09:00:00Z"],
    "kind": KINDS,
    "lat": ["48.85", "-33.9"],
    "lon": [" 2.35 ", "151.2"],
    "accuracy_m": ["", "12"],
    "speed_mps": ["", "0.0", "3"],
    "app": ["com.whatsapp", " com.spotify.music "],
    "category": ["", "Social", " MAPS/TRAVEL ", "music/video"],
    "name": ["view", " add_to_cart"],
    "value": ["", "24.9"],
    "duration_s": ["", "40"],
    "tz": ["", "Asia/Tokyo", "+05:30"],
    "extra": ["x"],
}
cells = st.one_of(st.sampled_from(CELLS), st.text(max_size=6))


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    kept = [column for column in COLUMNS if column in ("ts", "kind") or draw(st.booleans())]
    repeated = draw(st.lists(st.sampled_from(COLUMNS), max_size=2))
    header = list(draw(st.permutations(kept + repeated)))
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        values = [
            draw(st.sampled_from(PLAUSIBLE[column])) if draw(st.integers(0, 9)) else draw(cells)
            for column in header
        ]
        short = draw(st.integers(0, len(values))) if not draw(st.integers(0, 4)) else len(values)
        rows.append(values[:short])
    return header, rows


@given(tables(), st.sampled_from([None, "Europe/Paris", "+05:30"]))
def test_csv_fast_path_equals_the_general_parser(
    table: tuple[list[str], list[list[str]]], default_tz: str | None
) -> None:
    text = as_csv(*table)
    assert fast(text, default_tz) == general(text, default_tz)


def test_well_formed_rows_of_every_kind_take_the_fast_path() -> None:
    header = ["kind", "tz", "ts", "lat", "lon", "app", "category", "name", "value", "duration_s"]
    rows = [
        ["location", "", "1772438400", "48.85", "2.35", "", "", "", "", ""],
        ["app", "Asia/Tokyo", "1772438401", "", "", "com.whatsapp", "Maps/Travel ", "", "", "5"],
        ["screen", "", "2026-03-02T09:00:00+01:00", "", "", "", "", "home", "", ""],
        ["event", "", "1772438403", "", "", "", "", "add_to_cart", "24.9", ""],
    ]
    parser = _trace._CsvParser(header, "Europe/Paris")
    signals = [parser.parse(list(row)) for row in rows]
    assert signals == [
        ("location", 1772438400.0, "Europe/Paris", (48.85, 2.35, None, None), {}),
        (
            "app",
            1772438401.0,
            "Asia/Tokyo",
            ("com.whatsapp",),
            {"category": "maps_travel", "duration_s": 5.0},
        ),
        ("screen", 1772438400.0, "Europe/Paris", ("home",), {"duration_s": None}),
        ("event", 1772438403.0, "Europe/Paris", ("add_to_cart", 24.9), {}),
    ]


def test_unusual_rows_are_left_to_the_general_parser() -> None:
    parser = _trace._CsvParser(["ts", "kind", "lat", "lon", "name"], None)
    assert parser.parse(["1772438400", "Location", "1", "2", ""]) is None  # case of the kind
    assert parser.parse(["1772438400", "location", " ", "2", ""]) is None  # blank latitude
    assert parser.parse(["2026-03-02T09:00:00", "event", "", "", "view"]) is None  # no zone

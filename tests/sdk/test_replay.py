"""Replay: traces go through the public API; bad rows are reported by line and skipped."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepersona.edge_models.population import population, write_trace
from edgepersona.sdk import EdgePersona, InvalidSignalError, ManualClock, TraceError, _trace, replay
from edgepersona.sdk.cli import main

from ..conftest import T0

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "docs" / "traces" / "sample_day.csv"

MESSY_CSV = """\ufeffts,kind,lat,lon,accuracy_m,app,name,value,duration_s,tz,extra_column
{t0},location,48.85,2.35,10,,,,,,ignored
{t0},location,48.85,2.35,10,,,,,,ignored
{t1},location,nan,2.35,,,,,,,
{t1},location,95,2.35,,,,,,,
{t1},teleport,,,,,,,,,
{t1},app,,,,com.whatsapp,,,,,
{t2},app,,,,com.spotify.music,,,,,
2026-03-02T10:00:00,event,,,,,purchase,12.5,,Europe/Paris,
2026-03-02T10:00:00,event,,,,,purchase,12.5,,,
{t3},event,,,,,,,,,
{ms},event,,,,,view,,,,
{t3},screen,,,,,home,,abc,,
{t3},event,,,,,add_to_cart,1,,Not/AZone,
,app,,,,com.whatsapp,,,,,
1,2,3,4,5,6,7,8,9,10,11,12,13
{t3},app,,,,com.reddit.frontpage,,,,,
"""


def messy(tmp_path: Path) -> Path:
    path = tmp_path / "messy.csv"
    path.write_text(
        MESSY_CSV.format(t0=T0, t1=T0 + 60, t2=T0 + 120, t3=T0 + 300, ms=int(T0 * 1000))
    )
    return path


def test_bad_rows_are_reported_by_line_and_the_rest_applied(tmp_path: Path) -> None:
    report = replay(messy(tmp_path), tmp_path / "device").as_dict()
    reasons = {item["line"]: item["reason"] for item in report["rejected"]}
    assert sorted(reasons) == [4, 5, 6, 10, 11, 12, 13, 14, 15, 16]
    assert "lat" in reasons[4] and "finite" in reasons[4]
    assert "outside -90..90" in reasons[5]
    assert "teleport" in reasons[6] and "accepted: location, app, screen, event" in reasons[6]
    assert "no UTC offset" in reasons[10]
    assert "name" in reasons[11]
    assert "milliseconds" in reasons[12]
    assert "duration_s" in reasons[13]
    assert "tz" in reasons[14]
    assert "ts" in reasons[15]
    assert "13 cells" in reasons[16]
    assert report["ingested"] == 5
    assert report["duplicates"] == 1
    assert report["counts"] == {"location": 1, "app": 3, "screen": 0, "event": 1}
    assert report["rejected_count"] == 10
    assert report["span"]["start"].startswith("2026-03-02T08:00:00")


def test_a_replayed_row_is_all_or_nothing(tmp_path: Path) -> None:
    replay(messy(tmp_path), tmp_path / "device")
    # A clock at the trace's time: at today's date retention would rightly drop these rows.
    with EdgePersona.open(tmp_path / "device", "check", clock=ManualClock(T0 + 600)) as sdk:
        signals = sdk.export()["signals"]
    assert [(r["lat"], r["lon"]) for r in signals["location"]] == [(48.85, 2.35)]
    assert [r["app"] for r in signals["app"]] == [
        "com.whatsapp",
        "com.spotify.music",
        "com.reddit.frontpage",
    ]
    assert signals["app"][0]["duration_s"] == 60.0
    assert [(r["name"], r["value"], r["utc_offset"]) for r in signals["event"]] == [
        ("purchase", 12.5, 3600),
    ]


def test_json_lines_gzip_and_iso_offsets(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl.gz"
    lines = [
        {"ts": "2026-03-02T09:00:00+01:00", "kind": "app", "app": "com.whatsapp", "duration_s": 30},
        {"ts": T0 + 10, "kind": "location", "lat": "48.8", "lon": 2.3, "accuracy_m": 5},
        {"ts": "2026-03-02T08:00:20Z", "kind": "EVENT", "name": "view"},
        "not an object",
        {"ts": T0, "kind": "location", "lat": True, "lon": 2.3},
    ]
    with gzip.open(path, "wt") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
        handle.write("{broken json\n\n")
    report = replay(path, tmp_path / "device").as_dict()
    assert report["counts"] == {"location": 1, "app": 1, "screen": 0, "event": 1}
    assert [(r["line"], r["reason"][:20]) for r in report["rejected"]] == [
        (4, "not a JSON object"),
        (5, "lat: expected a numb"),
        (6, "not valid JSON (Expe"),
    ]


def test_format_is_sniffed_without_a_suffix(tmp_path: Path) -> None:
    path = tmp_path / "trace"
    path.write_text(json.dumps({"ts": T0, "kind": "event", "name": "view"}) + "\n")
    assert replay(path, tmp_path / "device").ingested == 1


def test_naive_iso_times_use_the_default_zone(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ts,kind,name\n2026-03-02T09:00:00,event,view\n")
    report = replay(path, tmp_path / "device", tz="Europe/Paris")
    assert report.ingested == 1
    assert report.as_dict()["span"]["start"] == "2026-03-02T08:00:00+00:00"


def test_unreadable_traces_raise_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        replay(tmp_path / "missing.csv", tmp_path / "device")
    no_header = tmp_path / "bad.csv"
    no_header.write_text("a,b\n1,2\n")
    with pytest.raises(TraceError, match="'ts' and 'kind'"):
        replay(no_header, tmp_path / "device2")


def test_cli_json_output_has_the_documented_keys(tmp_path: Path, capsys) -> None:
    assert main(["replay", str(SAMPLE), "--json", "--data-dir", str(tmp_path / "d")]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("ingested", "rejected", "counts", "span", "seconds"):
        assert key in out
    assert out["ingested"] > 150
    assert {item["line"] for item in out["rejected"]} and all(
        set(item) == {"line", "reason"} for item in out["rejected"]
    )
    assert (tmp_path / "d" / "edgepersona.db").exists()


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgepersona.sdk.cli", "replay", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("edgepersona replay: error: cannot read trace")
    assert "Traceback" not in result.stderr
    bad_zone = subprocess.run(
        [sys.executable, "-m", "edgepersona.sdk.cli", "replay", str(SAMPLE), "--tz", "Nowhere"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad_zone.returncode == 1 and "Nowhere" in bad_zone.stderr


def test_human_output_summarises(tmp_path: Path, capsys) -> None:
    assert main(["replay", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "ingested" in out and "rejected" in out and "line " in out


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
row_keys = st.sampled_from(
    [
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
        "other",
    ]
)


@given(st.dictionaries(row_keys, json_values, max_size=8))
def test_parse_gives_a_signal_or_a_field_error(row: dict) -> None:
    try:
        signal = _trace.parse(row, None)
    except InvalidSignalError as exc:
        assert exc.field in {*row, "ts", "kind", "lat", "lon", "app", "name"}  # noqa: PT017
    else:
        assert signal.kind in _trace.KINDS


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_replay_of_arbitrary_bytes_reports_or_refuses(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"ts,kind,lat,lon,app,name,value\n" + data)
    report = replay(path, tmp_path / "device")  # no exception, whatever the bytes
    stream, kind = _trace.open_trace(path)
    with stream:
        rows = sum(1 for _ in _trace.records(stream, kind))
    assert report.ingested + report.duplicates + report.rejected_count == rows


def test_replay_reports_places_features_persona_and_moment(tmp_path: Path, capsys) -> None:
    assert main(["replay", str(SAMPLE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    labels = {place["label"] for place in out["places"]}
    assert "home" in labels
    home = next(p for p in out["places"] if p["label"] == "home")
    assert home["visits"] and home["visits"][0]["start"].endswith("+00:00")
    assert abs(home["lat"] - 48.8566) < 0.001
    assert list(out["features"])[:2] == ["tod_night", "tod_morning"]
    assert out["persona"]["id"] in out["persona"]["probabilities"]
    assert out["model_version"] == 1
    assert out["moment"]["place"] == "home"


def live(trace: Path, data_dir: Path, tz: str) -> None:
    """The trace's rows as an app would send them: one public call each, default settings."""
    latest = T0 + 400 * 86400
    clock = ManualClock(0.0)
    with EdgePersona.open(data_dir, "edgepersona-replay", clock=clock, tz=tz) as sdk:
        sdk.consent.grant("personalization")
        sdk.consent.grant("location")
        methods = {
            "location": sdk.record_location,
            "app": sdk.track_app,
            "screen": sdk.track_screen,
            "event": sdk.track_event,
        }
        stream, kind = _trace.open_trace(trace)
        with stream:
            for _, row in _trace.records(stream, kind):
                if isinstance(row, str):
                    continue
                try:
                    signal = _trace.parse(row, tz)
                    if signal.ts <= latest:
                        clock.set(signal.ts)
                    methods[signal.kind](*signal.args, ts=signal.ts, tz=signal.tz, **signal.kwargs)
                except InvalidSignalError:
                    continue


def stored(data_dir: Path, now: float) -> tuple[dict, list]:
    with EdgePersona.open(data_dir, "check", clock=ManualClock(now)) as sdk:
        return sdk.export(), sdk.places()


def test_a_replay_stores_what_the_same_calls_made_live_store(tmp_path: Path) -> None:
    device = next(d for d in population(20, seed=3) if d.persona_id == "commuter")
    trace = tmp_path / "commuter.csv"
    write_trace(device, trace, start=date(2026, 1, 5), weeks=3)
    with trace.open("a") as out:  # and some rows the replay must reject
        out.write("1767600000,location,95,2,,,,,,,,\n1767600001,teleport,,,,,,,,,,\n")
    report = replay(trace, tmp_path / "replayed", tz="Europe/Paris")
    live(trace, tmp_path / "live", "Europe/Paris")
    assert report.ingested > 4000 and report.rejected_count == 2
    replayed, replayed_places = stored(tmp_path / "replayed", report.end or 0.0)
    expected, expected_places = stored(tmp_path / "live", report.end or 0.0)
    assert replayed_places == expected_places
    assert replayed["signals"] == expected["signals"]
    assert replayed["stays"] == expected["stays"]
    for period in ("hourly", "daily"):
        got, want = replayed["rollups"][period], expected["rollups"][period]
        assert [row["n"] for row in got] == [row["n"] for row in want]
        # Seconds and values may be added up in another order: commits are batched differently.
        assert all(g == pytest.approx(w) for g, w in zip(got, want, strict=True))

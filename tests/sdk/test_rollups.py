"""Rollup folding is pure: counts, seconds and values are conserved, keys stay bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk._rollups import OTHER_KEY, cap_keys, days_of, fold, fold_counts, named

Row = tuple[str, float, str, float, float]  # kind, local_ts, key, seconds, value
rows = st.lists(
    st.tuples(
        st.sampled_from(["app", "screen", "event", "location"]),
        st.floats(min_value=1.6e9, max_value=1.8e9),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.floats(min_value=0, max_value=86_400),
        st.floats(min_value=-1e6, max_value=1e6),
    ),
    max_size=40,
)


def fold_all(batch: list[Row]) -> dict:
    into: dict = {}
    for kind, *folded in batch:
        fold(kind, [tuple(folded)], into)
    return named(into)


def totals(sums: dict) -> tuple[float, float, float]:
    return (
        sum(v[0] for v in sums.values()),
        sum(v[1] for v in sums.values()),
        sum(v[2] for v in sums.values()),
    )


@given(rows)
def test_fold_conserves_counts_seconds_and_values(batch: list[Row]) -> None:
    n, seconds, value = totals(fold_all(batch))
    assert n == len(batch)
    assert abs(seconds - sum(r[3] for r in batch)) < 1e-6 * (1 + seconds)
    assert abs(value - sum(r[4] for r in batch)) < 1e-6 * (1 + abs(value))


@given(rows)
def test_no_hour_holds_more_than_an_hour_per_row(batch: list[Row]) -> None:
    for (hour, _, _), (_, seconds, _) in fold_all(batch).items():
        assert len(hour) == 13
        assert seconds <= 3600 * len(batch) + 1e-6


@given(rows)
def test_days_are_the_sum_of_their_hours(batch: list[Row]) -> None:
    hourly = fold_all(batch)
    for day_total, hour_total in zip(totals(days_of(hourly)), totals(hourly), strict=True):
        assert abs(day_total - hour_total) <= 1e-6 * (1 + abs(hour_total))


def test_a_duration_is_split_at_hour_boundaries() -> None:
    start = 1_772_438_400.0 + 50 * 60  # 08:50
    hourly = fold_all([("app", start, "social", 7200.0, 0.0)])
    assert {hour: v[1] for (hour, _, _), v in hourly.items()} == {
        "2026-03-02T08": 600.0,
        "2026-03-02T09": 3600.0,
        "2026-03-02T10": 3000.0,
    }


@given(rows, st.integers(min_value=1, max_value=4))
def test_cap_keys_bounds_distinct_keys_and_conserves_totals(batch: list[Row], cap: int) -> None:
    hourly = fold_all(batch)
    known: dict = {}
    capped = cap_keys(hourly, known, cap)
    assert totals(capped)[0] == totals(hourly)[0]
    for (day, kind), keys in known.items():
        assert len(keys - {OTHER_KEY}) <= cap
        stored = {key for (hour, k, key) in capped if hour[:10] == day and k == kind}
        assert stored <= keys


@given(
    st.lists(st.floats(min_value=1.6e9, max_value=1.8e9), max_size=60).map(
        lambda times: sorted(times)[: len(times) // 2] + times[len(times) // 2 :]
    )
)
def test_fold_counts_equals_folding_rows_without_seconds(times: list[float]) -> None:
    counted: dict = {("seed", "location", "fix"): [1, 0.0, 0.0]}
    folded = {key: list(sums) for key, sums in counted.items()}
    fold_counts("location", "fix", times, counted)
    fold("location", [(t, "fix", 0.0, 0.0) for t in times], folded)
    assert counted == folded


def cap_keys_reference(hourly: dict, known: dict, cap: int) -> dict:
    """The rule spelled out plainly: each key in turn, over the cap it becomes (other)."""
    capped: dict = {}
    for (hour, kind, key), sums in hourly.items():
        seen = known.setdefault((hour[:10], kind), set())
        if key not in seen and len(seen) >= cap:
            key = OTHER_KEY
        seen.add(key)
        target = capped.setdefault((hour, kind, key), [0, 0.0, 0.0])
        for i in range(3):
            target[i] += sums[i]
    return capped


@given(rows, st.integers(min_value=1, max_value=6), st.sets(st.sampled_from("abcdef")))
def test_cap_keys_follows_the_rule_and_leaves_its_input_alone(
    batch: list[Row], cap: int, stored: set[str]
) -> None:
    hourly = fold_all(batch)
    before = {key: list(sums) for key, sums in hourly.items()}
    days = {(hour[:10], kind) for hour, kind, _ in hourly}
    known = {day: set(sorted(stored)[:cap]) for day in days}
    known_copy = {day: set(keys) for day, keys in known.items()}
    assert cap_keys(hourly, known, cap) == cap_keys_reference(hourly, known_copy, cap)
    assert known == known_copy
    assert hourly == before

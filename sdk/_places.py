"""Places on the device: stays found in a stream of fixes, merged into labelled places.

Fixes arrive one at a time in time order and each costs O(1) amortised, never a pass over
history: ``StayDetector`` turns them into stays, ``PlaceIndex`` merges each stay into the
nearest place through a grid and labels places home, work or other from when the user dwells
there. Pure logic, no I/O; raw coordinates are never logged.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._location import EARTH_RADIUS_M, haversine_m
from .errors import InvalidSignalError

__all__ = ["LABELS", "Fix", "Place", "PlaceIndex", "Stay", "StayDetector", "split_dwell"]

LABELS = ("home", "work", "other")
DAY_S = 86_400
WEEK_S = 7 * DAY_S
NIGHT_WINDOWS = ((0, 6 * 3600), (22 * 3600, DAY_S))  # local 22:00-06:00, split at midnight
WORKDAY_WINDOW = (9 * 3600, 17 * 3600)  # local 09:00-17:00, Monday to Friday
WORK_MIN_S = 2 * 3600.0  # less weekday daytime dwell than this is a visit, not a workplace
# Each window's seconds in a whole week: a long stay adds these per week instead of per day.
NIGHT_PER_WEEK_S = 7 * sum(hi - lo for lo, hi in NIGHT_WINDOWS)
WORKDAY_PER_WEEK_S = 5 * (WORKDAY_WINDOW[1] - WORKDAY_WINDOW[0])
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180
BOUND_MARGIN = 1e-6  # relative; rounding in the bounds and the haversine is ~1e-12
_NEIGHBOURS = tuple(itertools.product((-1, 0, 1), repeat=3))


class Fix(NamedTuple):
    """One location fix; ``accuracy_m`` is the platform's error radius, ``None`` if unknown."""

    ts: float
    lat: float
    lon: float
    accuracy_m: float | None = None


class Stay(NamedTuple):
    """A stay: from its first fix to the first fix elsewhere, its centre, its number of fixes."""

    start: float
    end: float
    lat: float
    lon: float
    n: int


class StayDetector:
    """Sliding stay-point detection, same semantics as trackintel's
    ``generate_staypoints(method='sliding')`` (``_generate_staypoints_sliding_user``, 1.4).

    The first fix of a candidate is its anchor. A fix ``dist_threshold_m`` or more from the
    anchor closes the candidate, which is a stay if that fix came ``time_threshold_s`` or more
    after the anchor; either way it anchors the next candidate. A stay runs from the anchor to
    that first fix elsewhere (the user is taken to be there until seen elsewhere); its centre
    is the mean of the fixes inside, longitudes averaged as angles so the antimeridian is safe.
    More than ``gap_threshold_s`` between consecutive fixes drops the candidate without a stay
    (the phone was off, the dwell is unknown) and anchors a new one on the fix after the gap.
    ``finish()`` is trackintel's ``include_last=True``, and, as ``exclude_duplicate_pfs``
    does, a fix equal to one already taken (same time, place and accuracy) is ignored.

    Deviations, because a phone streams: a fix less accurate than ``max_accuracy_m`` is ignored
    outright (it neither closes nor extends a candidate, nor ends a gap), where trackintel has
    no notion of accuracy; a fix older than the last one taken is ignored, where trackintel
    sorts all its input first. Distances are haversine on the IUGG mean radius; trackintel's
    spherical law of cosines differs by under a millimetre at these distances.

    O(1) per fix, except a burst of k fixes sharing one timestamp, which costs O(k) each.
    """

    def __init__(
        self,
        dist_threshold_m: float = 100.0,
        time_threshold_s: float = 300.0,
        gap_threshold_s: float = 900.0,
        max_accuracy_m: float = 200.0,
    ) -> None:
        self.dist_threshold_m = dist_threshold_m
        self.time_threshold_s = time_threshold_s
        self.gap_threshold_s = gap_threshold_s
        self.max_accuracy_m = max_accuracy_m
        self._last: Fix | None = None  # the last fix taken, for order and gaps
        self._at_last_ts: list[Fix] = []  # filled only once two fixes share a time
        self._anchor: Fix | None = None
        self._anchor_cos_lat = 1.0
        self._last_inside = 0.0
        # Running sums of the candidate's fixes: the centre costs O(1) whenever it is asked for.
        self._n = 0
        self._sum_lat = self._sum_sin_lon = self._sum_cos_lon = 0.0

    def push(self, fix: Fix) -> Stay | None:
        """Take the next fix; return the stay it completed, if any."""
        ts, lat, lon, accuracy_m = fix  # locals: this runs for every fix
        if accuracy_m is not None and accuracy_m > self.max_accuracy_m:
            return None
        last, anchor = self._last, self._anchor
        if last is not None:
            if ts <= last.ts:
                if ts < last.ts or self._seen_at_last_ts(fix):
                    return None
            elif ts - last.ts > self.gap_threshold_s:
                anchor = None
        self._last = fix
        if anchor is None:
            self._start(fix)
            return None
        if self._inside(anchor, lat, lon):
            radians = math.radians(lon)  # the candidate's sums, inline: most fixes are inside
            self._n += 1
            self._sum_lat += lat
            self._sum_sin_lon += math.sin(radians)
            self._sum_cos_lon += math.cos(radians)
            self._last_inside = ts
            return None
        stay = self._stay(ts) if ts - anchor.ts >= self.time_threshold_s else None
        self._start(fix)
        return stay

    def finish(self) -> Stay | None:
        """End of data: the open candidate as a stay (ending at its last fix) if long enough."""
        anchor, stay = self._anchor, None
        if anchor is not None and self._last_inside - anchor.ts >= self.time_threshold_s:
            stay = self._stay(self._last_inside)
        self._anchor = None
        return stay

    def current(self) -> tuple[float, float, float] | None:
        """``(lat, lon, since_ts)`` of the ongoing stay once its fixes span the time
        threshold, else ``None``: the user is moving."""
        anchor = self._anchor
        if anchor is None or self._last_inside - anchor.ts < self.time_threshold_s:
            return None
        lat, lon = self._centre()
        return lat, lon, anchor.ts

    def _start(self, fix: Fix) -> None:
        lon = math.radians(fix.lon)
        self._anchor, self._last_inside = fix, fix.ts
        self._anchor_cos_lat = math.cos(math.radians(fix.lat))
        self._n, self._sum_lat = 1, fix.lat
        self._sum_sin_lon, self._sum_cos_lon = math.sin(lon), math.cos(lon)

    def _inside(self, anchor: Fix, lat: float, lon: float) -> bool:
        """Whether ``lat, lon`` is within the threshold of ``anchor``, as the haversine decides.

        Two exact bounds settle most fixes without it, nearly doubling the rate: a great circle
        is no shorter than the change in latitude, and no longer than a path along the anchor's
        parallel then a meridian. The margin leaves every close call to the haversine.
        """
        threshold = self.dist_threshold_m
        north_m = abs(lat - anchor.lat) * METRES_PER_DEGREE
        if north_m > threshold * (1 + BOUND_MARGIN):
            return False
        east = abs(lon - anchor.lon)
        if east > 180.0:  # across the antimeridian
            east = 360.0 - east
        east_m = east * METRES_PER_DEGREE * self._anchor_cos_lat
        if north_m + east_m < threshold * (1 - BOUND_MARGIN):
            return True
        return haversine_m(anchor.lat, anchor.lon, lat, lon) < threshold

    def _seen_at_last_ts(self, fix: Fix) -> bool:
        """Whether ``fix`` repeats one taken at the same time; else remember it."""
        taken = self._at_last_ts
        if not taken or taken[0].ts != fix.ts:
            taken = self._at_last_ts = [self._last] if self._last else []
        if fix in taken:
            return True
        taken.append(fix)
        return False

    def _centre(self) -> tuple[float, float]:
        lon = math.degrees(math.atan2(self._sum_sin_lon, self._sum_cos_lon))
        return self._sum_lat / self._n, lon

    def _stay(self, end: float) -> Stay:
        assert self._anchor is not None
        lat, lon = self._centre()
        return Stay(self._anchor.ts, end, lat, lon, self._n)


def split_dwell(start: float, end: float, utc_offset_s: float) -> tuple[float, float]:
    """Seconds of ``[start, end)`` at night and in weekday office hours, in local time.

    Night is 22:00-06:00 every day, office hours 09:00-17:00 Monday to Friday; the windows do
    not overlap, so the two parts never add up to more than the stay. One offset serves the
    whole stay: a daylight-saving change during it shifts the split by an hour at most.
    """
    duration = end - start
    if not duration > 0:
        return 0.0, 0.0
    local_start, local_end = start + utc_offset_s, end + utc_offset_s
    weeks = math.floor(duration / WEEK_S)  # the windows repeat weekly: count whole weeks at once
    night, workday = float(weeks * NIGHT_PER_WEEK_S), float(weeks * WORKDAY_PER_WEEK_S)
    local_start += weeks * WEEK_S
    day = math.floor(local_start / DAY_S)
    while day * DAY_S < local_end:
        midnight = day * DAY_S
        for low, high in NIGHT_WINDOWS:
            night += _overlap(local_start, local_end, midnight + low, midnight + high)
        if (day + 3) % 7 < 5:  # day 0, 1970-01-01, was a Thursday; Monday is 0
            low, high = WORKDAY_WINDOW
            workday += _overlap(local_start, local_end, midnight + low, midnight + high)
        day += 1
    # Rounding in the sums must not let the parts exceed the whole, not even by one ulp.
    night = min(night, duration)
    workday = min(workday, duration - night)
    while night + workday > duration:
        workday = math.nextafter(workday, 0.0)
    return night, workday


def _overlap(start: float, end: float, low: float, high: float) -> float:
    return max(0.0, min(end, high) - max(start, low))


@dataclass
class Place:
    """A place: dwell-weighted centre, visits, seconds of dwell; ``override``: the user's label."""

    id: int
    lat: float
    lon: float
    visits: int = 0
    dwell_s: float = 0.0
    night_s: float = 0.0
    workday_s: float = 0.0
    override: str | None = None


class PlaceIndex:
    """Places found so far, merged within ``merge_radius_m``, each looked up in O(1).

    The grid is of cubes ``merge_radius_m`` wide over points on the Earth seen in 3-D (metres
    from its centre): a chord is never longer than its arc, so a place within the radius lies
    in one of the 27 cubes around the point, at any latitude, poles and antimeridian included,
    with no degree-sized cells to stretch.
    """

    def __init__(self, merge_radius_m: float = 150.0) -> None:
        if not merge_radius_m > 0:
            raise InvalidSignalError(
                "merge_radius_m", f"expected a distance above 0 metres, got {merge_radius_m!r}"
            )
        self.merge_radius_m = merge_radius_m
        self._places: dict[int, Place] = {}
        self._grid: dict[tuple[int, int, int], list[int]] = {}
        self._next_id = 1

    def add(self, stay: Stay, utc_offset_s: int) -> int:
        """Count ``stay`` at the nearest place within the merge radius, else at a new one.

        ``utc_offset_s`` (where the stay happened) splits the dwell into night and office
        hours. A merged place's centre moves by the stay's share of the dwell.
        """
        duration = max(0.0, stay.end - stay.start)
        night, workday = split_dwell(stay.start, stay.end, utc_offset_s)
        place_id = self.nearest(stay.lat, stay.lon)
        if place_id is None:
            place = Place(self._next_id, stay.lat, stay.lon)
            self._insert(place)
        else:
            place = self._places[place_id]
            total = place.dwell_s + duration
            share = duration / total if total > 0 else 1 / (place.visits + 1)
            self._grid[self._cell(place.lat, place.lon)].remove(place.id)
            place.lat += (stay.lat - place.lat) * share
            place.lon = _wrap(place.lon + _wrap(stay.lon - place.lon) * share)
            self._grid.setdefault(self._cell(place.lat, place.lon), []).append(place.id)
        place.visits += 1
        place.dwell_s += duration
        place.night_s += night
        place.workday_s += workday
        return place.id

    def nearest(self, lat: float, lon: float) -> int | None:
        """The id of the nearest place within the merge radius, else ``None``."""
        best, best_m = None, self.merge_radius_m
        x, y, z = self._cell(lat, lon)
        for dx, dy, dz in _NEIGHBOURS:
            for place_id in self._grid.get((x + dx, y + dy, z + dz), ()):
                place = self._places[place_id]
                distance_m = haversine_m(lat, lon, place.lat, place.lon)
                if distance_m < best_m or (distance_m == best_m and best is None):
                    best, best_m = place_id, distance_m
        return best

    def labels(self) -> dict[int, str]:
        """``home``, ``work`` or ``other`` for every place; a user's override wins.

        Home is the place with the most night dwell, work the one with the most weekday
        daytime dwell (at least ``WORK_MIN_S``) that is not home; ties go to the older place.
        """
        places = self._places.values()
        home = _pick(places, "home", "night_s", 0.0, exclude=None)
        work = _pick(places, "work", "workday_s", WORK_MIN_S, exclude=home)
        return {
            place.id: "home" if place.id == home else "work" if place.id == work else "other"
            for place in places
        }

    def places(self, ids: Iterable[int] | None = None) -> list[Place]:
        """Copies of the places (of ``ids`` only, when given; unknown ids are skipped), oldest
        first: changing them does not change the index. A commit saves the few places its
        stays touched, so it must not pay for copying the hundreds a long history holds."""
        if ids is None:
            return [dataclasses.replace(place) for place in self._places.values()]
        wanted = sorted(place_id for place_id in set(ids) if place_id in self._places)
        return [dataclasses.replace(self._places[place_id]) for place_id in wanted]

    def override(self, place_id: int, label: str | None) -> None:
        """The user's label for a place; ``None`` hands it back to inference.

        ``home`` and ``work`` belong to one place at most, so setting one takes it from any
        other place; ``other`` keeps a place from being inferred home or work.

        Raises:
            InvalidSignalError: an unknown place id, or a label not in ``LABELS``.
        """
        if place_id not in self._places:
            raise InvalidSignalError("place_id", f"no place has id {place_id!r}")
        if label is not None and label not in LABELS:
            raise InvalidSignalError(
                "label", f"{label!r:.40} is not a label; accepted: home, work, other, None"
            )
        if label in ("home", "work"):
            for place in self._places.values():
                if place.override == label:
                    place.override = None
        self._places[place_id].override = label

    def to_rows(self) -> list[dict[str, Any]]:
        """The places as plain dicts, oldest first, for the store to save."""
        return [dataclasses.asdict(place) for place in self._places.values()]

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], merge_radius_m: float = 150.0
    ) -> PlaceIndex:
        """The index that ``to_rows`` saved."""
        index = cls(merge_radius_m)
        for row in rows:
            index._insert(Place(**{field.name: row[field.name] for field in _FIELDS}))
        return index

    def _insert(self, place: Place) -> None:
        self._places[place.id] = place
        self._grid.setdefault(self._cell(place.lat, place.lon), []).append(place.id)
        self._next_id = max(self._next_id, place.id + 1)

    def _cell(self, lat: float, lon: float) -> tuple[int, int, int]:
        phi, lam = math.radians(lat), math.radians(lon)
        scale = EARTH_RADIUS_M / self.merge_radius_m
        ring = scale * math.cos(phi)
        return (
            math.floor(ring * math.cos(lam)),
            math.floor(ring * math.sin(lam)),
            math.floor(scale * math.sin(phi)),
        )


_FIELDS = dataclasses.fields(Place)


def _wrap(lon: float) -> float:
    """A longitude or a difference of two, in [-180, 180)."""
    return (lon + 180.0) % 360.0 - 180.0


def _pick(
    places: Iterable[Place], label: str, field: str, minimum: float, exclude: int | None
) -> int | None:
    """The place labelled ``label`` by the user, else the one not labelled with the most
    seconds of ``field`` (above 0 and at least ``minimum``), the older one on a tie."""
    best: Place | None = None
    for place in places:
        if place.override == label:
            return place.id
        seconds = getattr(place, field)
        free = place.override is None and place.id != exclude
        if free and 0 < seconds >= minimum and (best is None or seconds > getattr(best, field)):
            best = place
    return None if best is None else best.id

"""Seeded synthetic phones: multi-week traces in the trace format with the true persona known.

A ``Device`` is a persona, a zone and a seed; everything else (city, home and work, favourite
places and apps, habits, how its phone samples and reports) is drawn from the seed, so a fleet is
a few bytes and each trace is regenerated and streamed on demand, one day in memory at a time.
Days are planned in local time (stays and trips, app sessions, visits to the host app) and
emitted in UTC order, so a trace that crosses a daylight-saving change keeps the user's clock.

Rows look like a real phone's: fixes every 5-15 minutes while still and every 30-90 s on the
move, GPS noise matching the reported accuracy, a few coarse network fixes (300-2000 m, valid
rows), hours-long gaps when the phone was off or the app killed, and a few repeated rows.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import IO, NamedTuple
from zoneinfo import ZoneInfo

from edgepersona.sdk._categories import AppCategoryResolver

from .personas import APP_POOLS, LAUNCHERS, PERSONAS, Daypart, Mix, Persona, persona

__all__ = ["CITIES", "COLUMNS", "City", "Device", "population", "trace_rows", "write_trace"]

COLUMNS = (
    "ts", "kind", "lat", "lon", "accuracy_m", "speed_mps",
    "app", "category", "name", "value", "duration_s", "tz",
)  # fmt: skip


class City(NamedTuple):
    name: str
    tz: str
    lat: float
    lon: float
    car_share: float  # share of people who drive rather than take transit
    underground: float  # share of transit rides out of sight of the sky (and of GPS)
    apps: tuple[str, ...]  # regional favourites; the SDK's resolver says their category


CITIES: tuple[City, ...] = (
    City("Paris", "Europe/Paris", 48.8566, 2.3522, 0.25, 0.6,
         ("fr.vinted", "com.deliveroo.orderapp", "com.citymapper.app.release")),
    City("Berlin", "Europe/Berlin", 52.52, 13.405, 0.3, 0.4,
         ("com.ebay.kleinanzeigen", "de.zalando.mobile", "de.hafas.android.db",
          "de.spiegel.android.app.spon")),
    City("London", "Europe/London", 51.5074, -0.1278, 0.25, 0.5,
         ("bbc.mobile.news.uk", "bbc.iplayer.android", "com.deliveroo.orderapp")),
    City("New York", "America/New_York", 40.7128, -74.006, 0.35, 0.6,
         ("com.dd.doordash", "com.walmart.android", "com.target.ui", "me.lyft.android")),
    City("São Paulo", "America/Sao_Paulo", -23.5505, -46.6333, 0.5, 0.3,
         ("com.mercadolibre", "com.shopee")),
    City("Mumbai", "Asia/Kolkata", 19.076, 72.8777, 0.4, 0.1,
         ("com.flipkart.android", "in.amazon.mShop.android.shopping", "com.olacabs.customer",
          "com.mxtech.videoplayer.ad")),
    City("Tokyo", "Asia/Tokyo", 35.6762, 139.6503, 0.15, 0.7,
         ("jp.naver.line.android", "jp.co.rakuten.android", "com.kouzoh.mercari",
          "jp.gocro.smartnews.android")),
    City("Sydney", "Australia/Sydney", -33.8688, 151.2093, 0.6, 0.2,
         ("com.ubercab.eats", "com.dd.doordash", "au.com.shiftyjelly.pocketcasts")),
)  # fmt: skip
_CITY_BY_TZ = {city.tz: city for city in CITIES}
_RESOLVER = AppCategoryResolver()
_REGIONAL = {
    city.tz: {c: tuple(a for a in city.apps if _RESOLVER.resolve(a) == c) for c in APP_POOLS}
    for city in CITIES
}

# Median foreground seconds of one app visit, before persona and per-visit spread.
_DWELL_S = {"social": 150, "communication": 70, "shopping": 170, "news": 160, "games": 720,
            "music_video": 420, "maps_travel": 110, "productivity": 200, "browser": 120,
            "system": 25, "other": 100}  # fmt: skip
# Place kinds: (near work half of the time, min and max metres away, min and max dwell minutes).
_PLACES = {
    "shop": (False, 150, 1500, 10, 40), "cafe": (True, 100, 1500, 30, 90),
    "restaurant": (True, 200, 4000, 60, 120), "gym": (True, 200, 3000, 45, 90),
    "friend": (False, 1000, 12000, 60, 240), "park": (False, 300, 4000, 45, 150),
    "mall": (False, 2000, 10000, 45, 150), "trip": (False, 5000, 40000, 120, 300),
}  # fmt: skip
_DAY_S = 86_400.0
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Device:
    """One simulated phone; everything but these four fields derives from ``seed``."""

    device_id: str
    persona_id: str
    tz: str
    seed: int


def population(
    n_devices: int, *, seed: int = 0, mix: Mapping[str, float] | None = None
) -> list[Device]:
    """``n_devices`` devices; ``mix`` weighs persona ids (default: uniform).

    Persona counts follow the mix as closely as whole devices allow, in shuffled order; cities
    are drawn uniformly. The same arguments always give the same devices.

    Raises:
        ValueError: negative ``n_devices``, an unknown persona id, or weights that are
            negative or all zero.
    """
    if n_devices < 0:
        raise ValueError(f"n_devices must be 0 or more, got {n_devices}")
    known = [p.id for p in PERSONAS]
    weights = dict.fromkeys(known, 1.0) if mix is None else dict(mix)
    for persona_id, weight in weights.items():
        if persona_id not in known:
            raise ValueError(f"unknown persona {persona_id!r} in mix; known: {', '.join(known)}")
        if not weight >= 0:
            raise ValueError(f"the weight of {persona_id!r} must be 0 or more, got {weight}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the persona mix needs at least one positive weight")
    quotas = {pid: n_devices * w / total for pid, w in weights.items()}
    counts = {pid: int(q) for pid, q in quotas.items()}
    for pid in sorted(quotas, key=lambda pid: counts[pid] - quotas[pid])[
        : n_devices - sum(counts.values())
    ]:
        counts[pid] += 1
    ids = [pid for pid, n in counts.items() for _ in range(n)]
    rng = random.Random(seed)
    rng.shuffle(ids)
    return [
        Device(f"sim-{seed}-{i:05d}", pid, rng.choice(CITIES).tz, rng.getrandbits(63))
        for i, pid in enumerate(ids)
    ]


def trace_rows(
    device: Device, *, start: datetime | date, weeks: int
) -> Iterator[dict[str, object]]:
    """The device's trace, time-ordered, one dict per row holding its non-empty columns.

    It covers ``7 * weeks`` local days from ``start``'s date in the device's zone; rows before
    a ``datetime`` start (a naive one is local time) are left out.

    Raises:
        ValueError: negative ``weeks``, or a device whose zone has no simulated city.
        KeyError: a device whose persona id is unknown.
    """
    rows = _rows(device, start, weeks)
    return ({c: v for c, v in zip(COLUMNS, row, strict=True) if v is not None} for row in rows)


def write_trace(device: Device, path: Path, *, start: datetime | date, weeks: int) -> int:
    """Write ``trace_rows`` to ``path``: CSV for ``.csv``, JSON Lines for ``.jsonl``.

    Either may end in ``.gz`` for gzip. Returns the number of rows written.

    Raises:
        ValueError: another suffix, or as ``trace_rows``.
    """
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith((".csv", ".jsonl")):
        raise ValueError(f"{path.name}: write .csv or .jsonl, optionally followed by .gz")
    rows = _rows(device, start, weeks)
    count = 0
    with _open_text(path) as out:
        if name.endswith(".csv"):
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow(row)
                count += 1
        else:
            encode = json.JSONEncoder(separators=(",", ":")).encode
            for row in rows:
                out.write(
                    encode({c: v for c, v in zip(COLUMNS, row, strict=True) if v is not None})
                )
                out.write("\n")
                count += 1
    return count


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=5)
    return open(path, "w", encoding="utf-8", newline="")


Row = tuple[object, ...]  # in COLUMNS order, None where empty
Item = tuple[float, str, object, object, object, object]  # local seconds, kind, fields
_first = itemgetter(0)


def _rows(device: Device, start: datetime | date, weeks: int) -> Iterator[Row]:
    """Checks the arguments now, then returns the lazy stream of rows."""
    if weeks < 0:
        raise ValueError(f"weeks must be 0 or more, got {weeks}")
    life = _Life(device, 7 * weeks)
    cutoff = -math.inf
    if isinstance(start, datetime):
        aware = start if start.tzinfo is not None else start.replace(tzinfo=life.zone)
        cutoff = aware.timestamp()
        start = aware.astimezone(life.zone).date()
    days = (_LocalDay(life.zone, start + timedelta(days=i)) for i in range(7 * weeks))
    return (row for index, day in enumerate(days) for row in life.day(index, day, cutoff))


class _LocalDay:
    """One local calendar day: its seconds from midnight to UTC, across a DST change."""

    def __init__(self, zone: ZoneInfo, day: date) -> None:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        off0 = _utcoffset(midnight)
        self.weekday = day.weekday()
        self.base = midnight.timestamp()
        # Aware + timedelta is wall-clock arithmetic: the next local midnight.
        self.shift = _utcoffset(midnight + timedelta(days=1)) - off0
        self.switch = math.inf  # the UTC instant the clocks change, if they do today
        if self.shift:
            t = self.base
            while _utcoffset(datetime.fromtimestamp(t, zone)) == off0:
                t += 900  # changes fall on quarter hours
            self.switch = t
        self.prefix = f"{day.isoformat()}T"
        self.suffixes = (_offset_text(off0), _offset_text(off0 + self.shift))

    def iso(self, t: float) -> str:
        after = t >= self.switch
        minutes, second = divmod(int(t - self.base + (self.shift if after else 0)), 60)
        hour, minute = divmod(minutes, 60)
        return f"{self.prefix}{hour:02d}:{minute:02d}:{second:02d}{self.suffixes[after]}"


def _utcoffset(moment: datetime) -> int:
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _offset_text(seconds: int) -> str:
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{'-' if seconds < 0 else '+'}{hours:02d}:{minutes:02d}"


class _Place(NamedTuple):
    x: float  # metres east of the city centre
    y: float  # metres north
    indoor: bool


class _Leg(NamedTuple):
    start: float
    end: float
    a: _Place
    b: _Place
    speed: float  # m/s; 0 while waiting for a train or bus
    hidden: bool  # underground: most fixes are lost


class _Seg(NamedTuple):
    start: float
    end: float
    where: str  # home, work, out, or moving
    place: _Place  # where a stay is; a trip's destination
    legs: tuple[_Leg, ...]  # a trip's legs, empty for a stay


class _Plan:
    """A day of stays and trips built in time order, from midnight at home."""

    def __init__(self, life: _Life) -> None:
        self.life = life
        self.segs: list[_Seg] = []
        self.t = 0.0
        self.at = life.home
        self.where = "home"

    def go(self, place: _Place, where: str, depart: float) -> None:
        """Stay where we are until ``depart``, then travel to ``place``."""
        if depart > self.t:
            self.segs.append(_Seg(self.t, depart, self.where, self.at, ()))
            self.t = depart
        legs = self.life.trip(self.at, place, self.t)
        if legs:
            self.segs.append(_Seg(self.t, legs[-1].end, "moving", place, legs))
            self.t = legs[-1].end
        self.at, self.where = place, where

    def end(self) -> list[_Seg]:
        if self.where != "home":
            self.go(self.life.home, "home", self.t)
        self.segs.append(_Seg(self.t, max(self.t, _DAY_S), "home", self.at, ()))
        return self.segs


class _Life:
    """A device's fixed traits, drawn from its seed, and the days they produce."""

    def __init__(self, device: Device, n_days: int) -> None:
        self.persona = persona(device.persona_id)
        try:
            city = _CITY_BY_TZ[device.tz]
        except KeyError:
            raise ValueError(
                f"device {device.device_id}: no simulated city in {device.tz!r}; "
                f"use one of {', '.join(_CITY_BY_TZ)}"
            ) from None
        rng = self.rng = random.Random(device.seed)
        self.city, self.zone = city, ZoneInfo(city.tz)
        style = rng.random()  # how the phone writes time: Unix + tz, ISO, or ISO + tz
        self.iso = style >= 0.5
        self.tz_column = device.tz if style < 0.5 or style >= 0.8 else None
        self.per_m = (1 / _M_PER_DEG, 1 / (_M_PER_DEG * math.cos(math.radians(city.lat))))
        radius, angle = 1000 + 11000 * rng.random() ** 0.8, rng.uniform(0, math.tau)
        self.home = _Place(radius * math.cos(angle), radius * math.sin(angle), True)
        commute = min(25000.0, max(2000.0, rng.lognormvariate(math.log(7000), 0.6)))
        toward = math.atan2(-self.home.y, -self.home.x) + rng.uniform(-1.2, 1.2)  # work is central
        self.work = _toward(self.home, commute, toward, True)
        self.favourites = {
            kind: [self._new_place(kind) for _ in range(rng.randint(1, 3))]
            for kind in _PLACES
            if kind != "trip"
        }
        p = self.persona
        self.wake_shift, self.sleep_shift = rng.uniform(-1, 1), rng.uniform(-1, 1)
        self.work_shift = rng.uniform(-1, 1)
        self.office_days = set(rng.sample(range(5), rng.randint(*p.office_days)))
        self.intensity = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        self.shop_intensity = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        self.car = rng.random() < city.car_share
        self.walk_limit, self.walk_speed = rng.uniform(1000, 2000), rng.uniform(1.2, 1.6)
        self.ride_speed = rng.uniform(8, 14) if self.car else rng.uniform(7, 11)
        self.still_s, self.moving_s = rng.uniform(375, 780), rng.uniform(37, 75)
        self.accuracy = rng.uniform(6, 16)
        self.reports_speed = rng.random() < 0.75
        self.bad_fix, self.repeat = rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.004)
        self.gap_rate = rng.uniform(0.02, 0.12)
        self.explicit, self.launcher_end = rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.9)
        self.launcher = rng.choice(LAUNCHERS)
        self.apps = {category: self._favourite_apps(category) for category in APP_POOLS}
        self.taste = {category: rng.lognormvariate(0, 0.5) for category in APP_POOLS}
        self._mixes: dict[Mix, tuple[tuple[str, ...], list[float]]] = {}
        self.off: tuple[int, int, Persona] | None = None  # some days lived as another persona
        if n_days and rng.random() < 0.1:
            first = rng.randrange(n_days)
            other = rng.choice([q for q in PERSONAS if q is not p])
            self.off = (first, first + rng.randint(3, 9), other)

    # -- traits ---------------------------------------------------------------------------

    def _new_place(self, kind: str, far: bool = False) -> _Place:
        near_work, low, high, _, _ = _PLACES["trip" if far else kind]
        anchor = self.work if near_work and self.rng.random() < 0.5 else self.home
        metres = math.sqrt(self.rng.uniform(low * low, high * high))  # uniform over the area
        angle = self.rng.uniform(0, math.tau)
        return _toward(anchor, metres, angle, kind not in ("park", "trip") and not far)

    def _favourite_apps(self, category: str) -> tuple[tuple[str, ...], list[str], list[float]]:
        regional = _REGIONAL[self.city.tz][category]
        pool = APP_POOLS[category] + tuple(a for a in regional if a not in APP_POOLS[category])
        preferred = self.persona.preferred_apps
        weights = [4.0 if a in preferred else 3.0 if a in regional else 1.0 for a in pool]
        favourites: list[str] = []
        for _ in range(min(len(pool), self.rng.randint(1, 4))):
            index = self.rng.choices(range(len(pool)), weights)[0]
            favourites.append(pool[index])
            weights[index] = 0.0
        return pool, favourites, list(accumulate(1 / (i + 1) for i in range(len(favourites))))

    def _category(self, mix: Mix) -> str:
        """A category from ``mix``, weighed by this device's own taste."""
        table = self._mixes.get(mix)
        if table is None:
            keys = tuple(key for key, _ in mix)
            table = self._mixes[mix] = (keys, list(accumulate(w * self.taste[k] for k, w in mix)))
        keys, cumulative = table
        return keys[bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    def _app(self, category: str) -> str:
        pool, favourites, cumulative = self.apps[category]
        if self.rng.random() < 0.08:
            return self.rng.choice(pool)
        return favourites[bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    # -- a day ----------------------------------------------------------------------------

    def day(self, index: int, local: _LocalDay, cutoff: float) -> Iterator[Row]:
        rng, p, weekday = self.rng, self.persona, local.weekday
        if self.off is not None and self.off[0] <= index < self.off[1]:
            p = self.off[2]
            works = weekday < 5 and rng.random() < sum(p.office_days) / 10
        else:
            works = weekday in self.office_days and rng.random() > 0.03  # else a day off
        lag = p.weekend_lag_h
        wake = (p.wake_h + self.wake_shift + (lag if weekday >= 5 else 0)) * 3600
        sleep = (p.sleep_h + self.sleep_shift + (lag if weekday in (4, 5) else 0)) * 3600
        last_night = (p.sleep_h + self.sleep_shift + (lag if weekday in (5, 6) else 0)) * 3600
        wake, sleep = wake + rng.uniform(-1800, 1800), sleep + rng.uniform(-1800, 1800)
        segs = self._plan(p, works, weekday >= 5, wake, min(sleep - 1800, 23.25 * 3600))
        first_trip = next((s.start for s in segs if s.legs), _DAY_S)
        wake = min(wake, first_trip - rng.uniform(900, 3600))
        awake = [(0.0, last_night - _DAY_S)] if last_night > _DAY_S else []
        awake.append((max(wake, last_night - _DAY_S), min(sleep, _DAY_S)))
        items: list[Item] = []
        self._fixes(segs, items)
        self._sessions(p, segs, awake, items)
        return self._emit(items, local, cutoff)

    def _plan(
        self, p: Persona, works: bool, weekend: bool, wake: float, limit: float
    ) -> list[_Seg]:
        rng, plan = self.rng, _Plan(self)
        if works:
            arrive = (p.work_hours[0] + self.work_shift) * 3600 + rng.uniform(-1200, 600)
            plan.go(self.work, "work", arrive - self.eta(self.home, self.work))
            if rng.random() < 0.35:  # lunch out near work
                lunch = _toward(self.work, rng.uniform(150, 900), rng.uniform(0, math.tau), True)
                plan.go(lunch, "out", rng.uniform(12 * 3600, 13.25 * 3600))
                plan.go(self.work, "work", plan.t + rng.uniform(1800, 3600))
            leave = (p.work_hours[1] + self.work_shift) * 3600 + rng.uniform(-1800, 1800)
            self._outings(plan, p, _poisson(rng, p.outings_weekday), max(leave, plan.t), limit)
        else:
            rate = p.outings_weekend if weekend else 1.5 * p.outings_weekday
            self._outings(plan, p, _poisson(rng, rate), wake + rng.uniform(1800, 7200), limit)
        return plan.end()

    def _outings(self, plan: _Plan, p: Persona, n: int, free_at: float, limit: float) -> None:
        rng = self.rng
        for start in sorted(rng.uniform(free_at, max(free_at, limit - 3600)) for _ in range(n)):
            kind = _pick(rng, p.place_kinds)
            if kind == "trip" or rng.random() < p.new_place_share:
                place = self._new_place(kind, far=rng.random() < p.far_trip_share)
            else:
                place = rng.choice(self.favourites[kind])
            dwell = rng.uniform(_PLACES[kind][3], _PLACES[kind][4]) * 60
            if plan.where != "home" and start > free_at + 1800 and rng.random() < 0.7:
                plan.go(self.home, "home", free_at)
                free_at = plan.t
            depart = max(start, free_at)
            back = self.eta(plan.at, place) + dwell + 1.5 * self.eta(place, self.home)
            if depart + back + 600 > limit:
                continue
            plan.go(place, "out", depart)
            free_at = plan.t + dwell
        if plan.where != "home":
            plan.go(self.home, "home", free_at)

    def eta(self, a: _Place, b: _Place) -> float:
        metres = 1.1 * math.hypot(b.x - a.x, b.y - a.y)
        if metres < self.walk_limit:
            return metres / self.walk_speed
        return metres / self.ride_speed + (120 if self.car else 900)

    def trip(self, a: _Place, b: _Place, t: float) -> tuple[_Leg, ...]:
        """Legs from ``a`` to ``b`` leaving at ``t``: a walk, a drive, or walk-wait-ride-walk."""
        rng = self.rng
        dx, dy = b.x - a.x, b.y - a.y
        metres = math.hypot(dx, dy)
        if metres < 1:
            return ()
        bend = rng.uniform(-0.2, 0.2)  # streets are not straight lines
        mid = _Place(a.x + dx / 2 - dy * bend, a.y + dy / 2 + dx * bend, False)
        walk = self.walk_speed * rng.uniform(0.9, 1.1)
        if metres < self.walk_limit:
            route = [(mid, walk, False), (b, walk, False)]
        elif self.car:
            ride = self.ride_speed * rng.uniform(0.85, 1.07)
            route = [(mid, ride, False), (b, ride, False)]
        else:
            ride = self.ride_speed * rng.uniform(0.85, 1.07)
            hidden = rng.random() < self.city.underground
            f1, f2 = (min(rng.uniform(250, 600), metres / 4) / metres for _ in range(2))
            stop1 = _Place(a.x + (mid.x - a.x) * f1 * 2, a.y + (mid.y - a.y) * f1 * 2, False)
            stop2 = _Place(b.x + (mid.x - b.x) * f2 * 2, b.y + (mid.y - b.y) * f2 * 2, False)
            route = [(stop1, walk, False), (stop1, 0.0, False), (mid, ride, hidden),
                     (stop2, ride, hidden), (b, walk, False)]  # fmt: skip
        legs, here = [], _Place(a.x, a.y, False)
        for there, speed, hidden in route:
            length = math.hypot(there.x - here.x, there.y - here.y)
            seconds = length / speed if speed else rng.uniform(60, 360)
            legs.append(_Leg(t, t + seconds, here, there, speed, hidden))
            here, t = there, t + seconds
        return tuple(legs)

    # -- rows -----------------------------------------------------------------------------

    def _fixes(self, segs: list[_Seg], items: list[Item]) -> None:
        """Location fixes like a "responsive" sampling policy: sparse while still."""
        rng, moving_s, still_s = self.rng, self.moving_s, self.still_s
        t, arrived = rng.uniform(0, still_s), False
        for seg in segs:
            if seg.legs:  # movement wakes the sampler up
                t = min(t, seg.start + rng.uniform(0, moving_s))
                for leg in seg.legs:
                    span = leg.end - leg.start
                    while t < leg.end:
                        if not (leg.hidden and rng.random() < 0.8):
                            f = (t - leg.start) / span if span > 0 else 1.0
                            x = leg.a.x + (leg.b.x - leg.a.x) * f
                            y = leg.a.y + (leg.b.y - leg.a.y) * f
                            self._fix(items, t, x, y, False, leg.speed * rng.uniform(0.8, 1.2))
                        t += moving_s * rng.uniform(0.8, 1.2)
                arrived = True
            else:  # after a trip, telling that the phone is still again takes 5 minutes
                place, settled = seg.place, seg.start + 300 if arrived else 0.0
                while t < seg.end:
                    self._fix(items, t, place.x, place.y, place.indoor, 0.0)
                    t += (moving_s if t < settled else still_s) * rng.uniform(0.8, 1.15)

    def _fix(self, items: list[Item], t: float, x: float, y: float, indoor: bool, v: float) -> None:
        rng = self.rng
        if rng.random() < self.bad_fix:  # a coarse network fix
            accuracy = rng.uniform(300, 2000)
        else:
            accuracy = self.accuracy * rng.uniform(0.6, 1.6) * (1.3 if indoor else 0.85)
        # Box-Muller: a 2-D normal error with 68% of fixes within the reported accuracy.
        error = accuracy / 1.5 * math.sqrt(-2 * math.log(1 - rng.random()))
        angle = math.tau * rng.random()
        speed = round(v * 10) / 10 if self.reports_speed else None
        x, y = x + error * math.cos(angle), y + error * math.sin(angle)
        items.append((t, "location", x, y, round(accuracy * 10) / 10, speed))

    def _sessions(self, p: Persona, segs: list[_Seg], awake: list[tuple[float, float]],
                  items: list[Item]) -> None:  # fmt: skip
        rng, parts = self.rng, _parts_by_hour(p)
        starts: list[tuple[float, bool]] = []
        for hour, part in enumerate(parts):
            mid = hour * 3600 + 1800
            rate = part.sessions_per_h * self.intensity
            if not any(a <= mid < b for a, b in awake):
                rate *= 0.04  # a glance at night
            starts.extend(
                (hour * 3600 + rng.random() * 3600, False) for _ in range(_poisson(rng, rate))
            )
        span = sum(b - a for a, b in awake)
        for _ in range(_poisson(rng, p.shop_sessions_per_day * self.shop_intensity)):
            u = rng.random() * span
            for a, b in awake:
                if u < b - a:
                    starts.append((a + u, True))
                    break
                u -= b - a
        starts.sort()
        seg_starts = [seg.start for seg in segs]
        mixes = {"moving": p.moving_mix, "work": p.work_mix, "out": p.out_mix}
        busy = 0.0
        for start, host in starts:
            if start < busy + 20 or start > _DAY_S - 300:
                continue  # the phone is in use already: this visit is part of that one
            if host:
                busy = self._host_session(p, start, items)
            else:
                where = segs[bisect_right(seg_starts, start) - 1].where
                mix = mixes.get(where) or parts[int(start // 3600)].mix
                busy = self._app_session(p, mix, start, items)

    def _app_session(self, p: Persona, mix: Mix, t: float, items: list[Item]) -> float:
        rng, scale = self.rng, dict(p.dwell_scale)
        category = ""
        apps = 1
        while apps < 6 and rng.random() < 0.45:
            apps += 1
        for _ in range(apps):
            if not category or rng.random() > 0.35:
                u = rng.random()
                category = "other" if u < 0.04 else "system" if u < 0.06 else self._category(mix)
            dwell = _DWELL_S[category] * scale.get(category, 1.0) * rng.lognormvariate(0, 0.8)
            dwell = min(dwell, 10_800.0)
            explicit = dwell > 1500 or rng.random() < self.explicit  # 1500: under the 30 min cap
            items.append((t, "app", self._app(category), round(dwell, 1) if explicit else None,
                          None, None))  # fmt: skip
            t += dwell + rng.uniform(1, 4)
        last = items[-1]
        if last[3] is None:  # close the session, or the next one would extend it
            u = rng.random()
            if u < self.launcher_end:
                items.append((t, "app", self.launcher, round(rng.uniform(2, 15), 1), None, None))
                t += 15
            elif u < 0.97:
                items[-1] = (last[0], "app", last[2], round(t - last[0], 1), None, None)
        return t

    def _host_session(self, p: Persona, t: float, items: list[Item]) -> float:
        """A visit to the host app: screens, product views, carts, offers, maybe a purchase."""
        rng, last_screen = self.rng, len(items)

        def screen(name: str) -> None:
            nonlocal last_screen
            last_screen = len(items)
            items.append((t, "screen", name, None, None, None))

        def event(delay: float, name: str, value: float | None = None) -> None:
            items.append((t + delay, "event", name, value, None, None))

        screen("home")
        if rng.random() < p.offer_shown_per_session:
            event(rng.uniform(1, 4), "offer_shown")
            u = rng.random()
            if u < p.offer_accept:
                event(rng.uniform(5, 25), "offer_accepted")
                t += 25
                screen("offers")
            elif u < p.offer_accept + p.offer_dismiss:
                event(rng.uniform(3, 15), "offer_dismissed")
        t += rng.uniform(5, 30)
        if rng.random() < 0.5:
            screen("search")
            t += rng.uniform(5, 40)
        carts: list[float] = []
        for _ in range(_poisson(rng, p.views_per_session)):
            screen("product")
            event(1, "view")
            if rng.random() < p.cart_per_view:
                carts.append(round(p.basket * rng.lognormvariate(0, 0.6), 2))
                event(rng.uniform(5, 9), "add_to_cart", carts[-1])
            t += rng.uniform(10, 90)
        bought = [price for price in carts if rng.random() < p.purchase_per_cart]
        if carts:
            screen("cart")
            t += rng.uniform(10, 60)
        if bought:
            screen("checkout")
            event(rng.uniform(20, 60), "purchase", round(sum(bought), 2))
            t += rng.uniform(60, 120)
        shown, _, name, *_ = items[last_screen]  # the host knows when its app went away
        items[last_screen] = (shown, "screen", name, round(t - shown, 1), None, None)
        return t

    def _emit(self, items: list[Item], local: _LocalDay, cutoff: float) -> Iterator[Row]:
        """The day's items as rows in UTC order, less gaps, with a few repeated rows."""
        rng, tz, iso = self.rng, self.tz_column, self.iso
        gaps = [  # (start, end, everything or only location)
            (start, start + rng.uniform(3600, 8 * 3600), all_kinds)
            for all_kinds in (True, False)
            if rng.random() < self.gap_rate
            for start in (rng.uniform(0, _DAY_S),)
        ]
        lat0, lon0, lat_per_m, lon_per_m = self.city.lat, self.city.lon, *self.per_m
        base, switch, shift = local.base, local.switch, local.shift
        items.sort(key=_first)
        rows: list[tuple[float, Row]] = []
        for s, kind, a, b, c, d in items:
            if gaps and any(g0 <= s < g1 and (all_ or kind == "location") for g0, g1, all_ in gaps):
                continue
            t = base + s
            if t >= switch:
                t -= shift
            if t < cutoff or s >= _DAY_S:
                continue
            ts: object = local.iso(t) if iso else round(t * 1000) / 1000
            if kind == "location":  # round(x * 1e6) / 1e6 is round(x, 6), three times faster
                lat = round((lat0 + b * lat_per_m) * 1e6) / 1e6  # type: ignore[operator]
                lon = round((lon0 + a * lon_per_m) * 1e6) / 1e6  # type: ignore[operator]
                row: Row = (ts, kind, lat, lon, c, d, None, None, None, None, None, tz)
            elif kind == "app":
                row = (ts, kind, None, None, None, None, a, None, None, None, b, tz)
            elif kind == "screen":
                row = (ts, kind, None, None, None, None, None, None, a, None, b, tz)
            else:
                row = (ts, kind, None, None, None, None, None, None, a, b, None, tz)
            rows.append((t, row))
        if local.switch != math.inf:  # local times in a skipped hour land before the change
            rows.sort(key=_first)
        repeat = self.repeat
        for _, row in rows:
            if rng.random() < repeat:
                yield row
            yield row


def _toward(origin: _Place, metres: float, angle: float, indoor: bool) -> _Place:
    return _Place(origin.x + metres * math.cos(angle), origin.y + metres * math.sin(angle), indoor)


@lru_cache(maxsize=64)
def _parts_by_hour(p: Persona) -> tuple[Daypart, ...]:
    return tuple(next(d for d in p.dayparts if d.start_h <= h < d.end_h) for h in range(24))


@lru_cache(maxsize=256)
def _cumulative(mix: Mix) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(key for key, _ in mix), tuple(accumulate(weight for _, weight in mix))


def _pick(rng: random.Random, mix: Mix) -> str:
    keys, cumulative = _cumulative(mix)
    return keys[bisect_right(cumulative, rng.random() * cumulative[-1])]


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means used here."""
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k

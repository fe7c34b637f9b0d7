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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import IO, NamedTuple
from zoneinfo import ZoneInfo

from ._mobility import Mobility, Places
from ._phone_use import PhoneUse
from ._sim import DAY_S, Item
from .personas import PERSONAS, Persona, persona

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
        # Every trace ever generated depends on the order of the draws below (and the default
        # bundle is built from such traces): add new draws after the last one.
        style = rng.random()  # how the phone writes time: Unix + tz, ISO, or ISO + tz
        self.iso = style >= 0.5
        self.tz_column = device.tz if style < 0.5 or style >= 0.8 else None
        self.per_m = (1 / _M_PER_DEG, 1 / (_M_PER_DEG * math.cos(math.radians(city.lat))))
        places = Places(rng)
        p = self.persona
        self.wake_shift, self.sleep_shift = rng.uniform(-1, 1), rng.uniform(-1, 1)
        self.work_shift = rng.uniform(-1, 1)
        self.office_days = set(rng.sample(range(5), rng.randint(*p.office_days)))
        intensity = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        shop_intensity = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        self.mobility = Mobility(rng, places, city.car_share, city.underground)
        self.repeat = rng.uniform(0.0, 0.004)
        self.gap_rate = rng.uniform(0.02, 0.12)
        self.phone = PhoneUse(rng, p, city.apps, intensity=intensity, shop_intensity=shop_intensity)
        self.off: tuple[int, int, Persona] | None = None  # some days lived as another persona
        if n_days and rng.random() < 0.1:
            first = rng.randrange(n_days)
            other = rng.choice([q for q in PERSONAS if q is not p])
            self.off = (first, first + rng.randint(3, 9), other)

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
        limit = min(sleep - 1800, 23.25 * 3600)
        segs = self.mobility.plan(p, works, weekday >= 5, wake, limit, self.work_shift)
        first_trip = next((s.start for s in segs if s.legs), DAY_S)
        wake = min(wake, first_trip - rng.uniform(900, 3600))
        awake = [(0.0, last_night - DAY_S)] if last_night > DAY_S else []
        awake.append((max(wake, last_night - DAY_S), min(sleep, DAY_S)))
        items: list[Item] = []
        self.mobility.fixes(segs, items)
        self.phone.sessions(p, segs, awake, items)
        return self._emit(items, local, cutoff)

    def _emit(self, items: list[Item], local: _LocalDay, cutoff: float) -> Iterator[Row]:
        """The day's items as rows in UTC order, less gaps, with a few repeated rows."""
        rng, tz, iso = self.rng, self.tz_column, self.iso
        gaps = [  # (start, end, everything or only location)
            (start, start + rng.uniform(3600, 8 * 3600), all_kinds)
            for all_kinds in (True, False)
            if rng.random() < self.gap_rate
            for start in (rng.uniform(0, DAY_S),)
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
            if t < cutoff or s >= DAY_S:
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

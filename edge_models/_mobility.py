"""Where a simulated phone goes: its places, each day's stays and trips, and its location fixes.

Positions are metres east and north of the city centre; ``population`` turns them into
latitude and longitude when it writes the rows.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

from ._sim import DAY_S, Item, pick, poisson
from .personas import Persona

# Place kinds: (near work half of the time, min and max metres away, min and max dwell minutes).
_PLACES = {
    "shop": (False, 150, 1500, 10, 40), "cafe": (True, 100, 1500, 30, 90),
    "restaurant": (True, 200, 4000, 60, 120), "gym": (True, 200, 3000, 45, 90),
    "friend": (False, 1000, 12000, 60, 240), "park": (False, 300, 4000, 45, 150),
    "mall": (False, 2000, 10000, 45, 150), "trip": (False, 5000, 40000, 120, 300),
}  # fmt: skip


class Place(NamedTuple):
    x: float  # metres east of the city centre
    y: float  # metres north
    indoor: bool


class Leg(NamedTuple):
    start: float
    end: float
    a: Place
    b: Place
    speed: float  # m/s; 0 while waiting for a train or bus
    hidden: bool  # underground: most fixes are lost


class Seg(NamedTuple):
    start: float
    end: float
    where: str  # home, work, out, or moving
    place: Place  # where a stay is; a trip's destination
    legs: tuple[Leg, ...]  # a trip's legs, empty for a stay


def _toward(origin: Place, metres: float, angle: float, indoor: bool) -> Place:
    return Place(origin.x + metres * math.cos(angle), origin.y + metres * math.sin(angle), indoor)


class Places:
    """A device's home, work and favourite places, drawn from ``rng``, and new places to go."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        radius, angle = 1000 + 11000 * rng.random() ** 0.8, rng.uniform(0, math.tau)
        self.home = Place(radius * math.cos(angle), radius * math.sin(angle), True)
        commute = min(25000.0, max(2000.0, rng.lognormvariate(math.log(7000), 0.6)))
        toward = math.atan2(-self.home.y, -self.home.x) + rng.uniform(-1.2, 1.2)  # work is central
        self.work = _toward(self.home, commute, toward, True)
        self.favourites = {
            kind: [self.new(kind) for _ in range(rng.randint(1, 3))]
            for kind in _PLACES
            if kind != "trip"
        }

    def new(self, kind: str, far: bool = False) -> Place:
        near_work, low, high, _, _ = _PLACES["trip" if far else kind]
        anchor = self.work if near_work and self.rng.random() < 0.5 else self.home
        metres = math.sqrt(self.rng.uniform(low * low, high * high))  # uniform over the area
        angle = self.rng.uniform(0, math.tau)
        return _toward(anchor, metres, angle, kind not in ("park", "trip") and not far)


class _Plan:
    """A day of stays and trips built in time order, from midnight at home."""

    def __init__(self, mobility: Mobility) -> None:
        self.mobility = mobility
        self.segs: list[Seg] = []
        self.t = 0.0
        self.at = mobility.places.home
        self.where = "home"

    def go(self, place: Place, where: str, depart: float) -> None:
        """Stay where we are until ``depart``, then travel to ``place``."""
        if depart > self.t:
            self.segs.append(Seg(self.t, depart, self.where, self.at, ()))
            self.t = depart
        legs = self.mobility.trip(self.at, place, self.t)
        if legs:
            self.segs.append(Seg(self.t, legs[-1].end, "moving", place, legs))
            self.t = legs[-1].end
        self.at, self.where = place, where

    def end(self) -> list[Seg]:
        if self.where != "home":
            self.go(self.mobility.places.home, "home", self.t)
        self.segs.append(Seg(self.t, max(self.t, DAY_S), "home", self.at, ()))
        return self.segs


class Mobility:
    """How a device gets about and how its phone samples location, drawn from ``rng``.

    ``car_share`` and ``underground`` are the city's (see ``population.City``).
    """

    def __init__(
        self, rng: random.Random, places: Places, car_share: float, underground: float
    ) -> None:
        self.rng, self.places, self.underground = rng, places, underground
        self.car = rng.random() < car_share
        self.walk_limit, self.walk_speed = rng.uniform(1000, 2000), rng.uniform(1.2, 1.6)
        self.ride_speed = rng.uniform(8, 14) if self.car else rng.uniform(7, 11)
        self.still_s, self.moving_s = rng.uniform(375, 780), rng.uniform(37, 75)
        self.accuracy = rng.uniform(6, 16)
        self.reports_speed = rng.random() < 0.75
        self.bad_fix = rng.uniform(0.002, 0.01)

    # -- stays and trips ------------------------------------------------------------------

    def plan(
        self, p: Persona, works: bool, weekend: bool, wake: float, limit: float, work_shift: float
    ) -> list[Seg]:
        """A day's stays and trips, midnight to midnight, back home by ``limit``."""
        rng, plan, home, work = self.rng, _Plan(self), self.places.home, self.places.work
        if works:
            arrive = (p.work_hours[0] + work_shift) * 3600 + rng.uniform(-1200, 600)
            plan.go(work, "work", arrive - self.eta(home, work))
            if rng.random() < 0.35:  # lunch out near work
                lunch = _toward(work, rng.uniform(150, 900), rng.uniform(0, math.tau), True)
                plan.go(lunch, "out", rng.uniform(12 * 3600, 13.25 * 3600))
                plan.go(work, "work", plan.t + rng.uniform(1800, 3600))
            leave = (p.work_hours[1] + work_shift) * 3600 + rng.uniform(-1800, 1800)
            self._outings(plan, p, poisson(rng, p.outings_weekday), max(leave, plan.t), limit)
        else:
            rate = p.outings_weekend if weekend else 1.5 * p.outings_weekday
            self._outings(plan, p, poisson(rng, rate), wake + rng.uniform(1800, 7200), limit)
        return plan.end()

    def _outings(self, plan: _Plan, p: Persona, n: int, free_at: float, limit: float) -> None:
        rng, home = self.rng, self.places.home
        for start in sorted(rng.uniform(free_at, max(free_at, limit - 3600)) for _ in range(n)):
            kind = pick(rng, p.place_kinds)
            if kind == "trip" or rng.random() < p.new_place_share:
                place = self.places.new(kind, far=rng.random() < p.far_trip_share)
            else:
                place = rng.choice(self.places.favourites[kind])
            dwell = rng.uniform(_PLACES[kind][3], _PLACES[kind][4]) * 60
            if plan.where != "home" and start > free_at + 1800 and rng.random() < 0.7:
                plan.go(home, "home", free_at)
                free_at = plan.t
            depart = max(start, free_at)
            back = self.eta(plan.at, place) + dwell + 1.5 * self.eta(place, home)
            if depart + back + 600 > limit:
                continue
            plan.go(place, "out", depart)
            free_at = plan.t + dwell
        if plan.where != "home":
            plan.go(home, "home", free_at)

    def eta(self, a: Place, b: Place) -> float:
        metres = 1.1 * math.hypot(b.x - a.x, b.y - a.y)
        if metres < self.walk_limit:
            return metres / self.walk_speed
        return metres / self.ride_speed + (120 if self.car else 900)

    def trip(self, a: Place, b: Place, t: float) -> tuple[Leg, ...]:
        """Legs from ``a`` to ``b`` leaving at ``t``: a walk, a drive, or walk-wait-ride-walk."""
        rng = self.rng
        dx, dy = b.x - a.x, b.y - a.y
        metres = math.hypot(dx, dy)
        if metres < 1:
            return ()
        bend = rng.uniform(-0.2, 0.2)  # streets are not straight lines
        mid = Place(a.x + dx / 2 - dy * bend, a.y + dy / 2 + dx * bend, False)
        walk = self.walk_speed * rng.uniform(0.9, 1.1)
        if metres < self.walk_limit:
            route = [(mid, walk, False), (b, walk, False)]
        elif self.car:
            ride = self.ride_speed * rng.uniform(0.85, 1.07)
            route = [(mid, ride, False), (b, ride, False)]
        else:
            ride = self.ride_speed * rng.uniform(0.85, 1.07)
            hidden = rng.random() < self.underground
            f1, f2 = (min(rng.uniform(250, 600), metres / 4) / metres for _ in range(2))
            stop1 = Place(a.x + (mid.x - a.x) * f1 * 2, a.y + (mid.y - a.y) * f1 * 2, False)
            stop2 = Place(b.x + (mid.x - b.x) * f2 * 2, b.y + (mid.y - b.y) * f2 * 2, False)
            route = [(stop1, walk, False), (stop1, 0.0, False), (mid, ride, hidden),
                     (stop2, ride, hidden), (b, walk, False)]  # fmt: skip
        legs, here = [], Place(a.x, a.y, False)
        for there, speed, hidden in route:
            length = math.hypot(there.x - here.x, there.y - here.y)
            seconds = length / speed if speed else rng.uniform(60, 360)
            legs.append(Leg(t, t + seconds, here, there, speed, hidden))
            here, t = there, t + seconds
        return tuple(legs)

    # -- location fixes -------------------------------------------------------------------

    def fixes(self, segs: list[Seg], items: list[Item]) -> None:
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

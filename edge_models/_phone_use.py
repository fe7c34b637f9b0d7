"""How a simulated phone is used: app sessions, and visits to the host app with their events."""

from __future__ import annotations

import random
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate

from edgepersona.sdk._categories import AppCategoryResolver

from ._mobility import Seg
from ._sim import DAY_S, Item, poisson
from .personas import APP_POOLS, LAUNCHERS, Daypart, Mix, Persona

_RESOLVER = AppCategoryResolver()
# Median foreground seconds of one app visit, before persona and per-visit spread.
_DWELL_S = {"social": 150, "communication": 70, "shopping": 170, "news": 160, "games": 720,
            "music_video": 420, "maps_travel": 110, "productivity": 200, "browser": 120,
            "system": 25, "other": 100}  # fmt: skip


@lru_cache(maxsize=16)
def _regional(city_apps: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """A city's favourite apps by the category the SDK's resolver gives them."""
    return {c: tuple(a for a in city_apps if _RESOLVER.resolve(a) == c) for c in APP_POOLS}


@lru_cache(maxsize=64)
def _parts_by_hour(p: Persona) -> tuple[Daypart, ...]:
    return tuple(next(d for d in p.dayparts if d.start_h <= h < d.end_h) for h in range(24))


class PhoneUse:
    """A device's apps and habits of use, drawn from ``rng``, and the sessions they produce.

    ``intensity`` and ``shop_intensity`` scale the persona's app sessions and host-app visits;
    ``city_apps`` are the city's regional favourites (see ``population.City``).
    """

    def __init__(
        self,
        rng: random.Random,
        persona: Persona,
        city_apps: tuple[str, ...],
        *,
        intensity: float,
        shop_intensity: float,
    ) -> None:
        self.rng, self.intensity, self.shop_intensity = rng, intensity, shop_intensity
        self.explicit, self.launcher_end = rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.9)
        self.launcher = rng.choice(LAUNCHERS)
        regional = _regional(city_apps)
        self.apps = {
            category: self._favourite_apps(persona, regional[category], category)
            for category in APP_POOLS
        }
        self.taste = {category: rng.lognormvariate(0, 0.5) for category in APP_POOLS}
        self._mixes: dict[Mix, tuple[tuple[str, ...], list[float]]] = {}

    def _favourite_apps(
        self, persona: Persona, regional: tuple[str, ...], category: str
    ) -> tuple[tuple[str, ...], list[str], list[float]]:
        pool = APP_POOLS[category] + tuple(a for a in regional if a not in APP_POOLS[category])
        preferred = persona.preferred_apps
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

    def sessions(self, p: Persona, segs: list[Seg], awake: list[tuple[float, float]],
                 items: list[Item]) -> None:  # fmt: skip
        """A day's app sessions and host-app visits, mostly while ``awake``, where ``segs`` say."""
        rng, parts = self.rng, _parts_by_hour(p)
        starts: list[tuple[float, bool]] = []
        for hour, part in enumerate(parts):
            mid = hour * 3600 + 1800
            rate = part.sessions_per_h * self.intensity
            if not any(a <= mid < b for a, b in awake):
                rate *= 0.04  # a glance at night
            starts.extend(
                (hour * 3600 + rng.random() * 3600, False) for _ in range(poisson(rng, rate))
            )
        span = sum(b - a for a, b in awake)
        for _ in range(poisson(rng, p.shop_sessions_per_day * self.shop_intensity)):
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
            if start < busy + 20 or start > DAY_S - 300:
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
        for _ in range(poisson(rng, p.views_per_session)):
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

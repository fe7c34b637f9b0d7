"""What the trace simulators share: a day's length, a planned item's shape, and seeded draws."""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate

from .personas import Mix

DAY_S = 86_400.0
Item = tuple[float, str, object, object, object, object]  # local seconds, kind, fields


@lru_cache(maxsize=256)
def _cumulative(mix: Mix) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(key for key, _ in mix), tuple(accumulate(weight for _, weight in mix))


def pick(rng: random.Random, mix: Mix) -> str:
    """A key of ``mix``, drawn by its weights."""
    keys, cumulative = _cumulative(mix)
    return keys[bisect_right(cumulative, rng.random() * cumulative[-1])]


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means used here."""
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k

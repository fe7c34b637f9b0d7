"""A retrain's offer priors: the window's noised outcome counts, summed, added to the playbook's.

Each (persona, offer) Beta prior becomes the previous prior plus the summed noised counts of
the window's uploads (each aggregate row's ``outcomes``), where a sum stands out of its noise
(``NOISE_SDS`` standard deviations, from each upload's epsilon); other cells keep their prior
and are counted. The sums are read in the retrain's read transaction, in SQL (the counts are
expanded from their JSON by the database); they are applied once the new personas are known.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from sqlalchemy import Connection, text

from edgepersona.edge_models.training import Persona
from edgepersona.sdk.privacy import outcome_noise_scale

__all__ = ["NOISE_SDS", "OutcomeSums", "playbook_with_priors", "read_outcome_sums"]

OUTCOME_SCALE_AT_1 = outcome_noise_scale(1.0)  # a count's Laplace scale is this / epsilon
NOISE_SDS = 2.0


class OutcomeSums(NamedTuple):
    """One (persona, offer) cell of the window: its summed noised counts and their noise."""

    persona: str
    offer: str
    accepted: float
    dismissed: float
    rows: int
    variance: float  # of the summed counts' Laplace noise


# Each upload's counts, {offer: [accepted, dismissed]}, expanded by the database's own JSON
# functions and summed per (persona, offer); the variance of a summed count's Laplace noise is
# 2 b^2 per upload, b = OUTCOME_SCALE_AT_1 / epsilon.
_SUMS_FROM = """
    FROM aggregates AS a, json_each(a.outcomes) AS o
    WHERE a.week >= :first_week AND a.week <= :last_week
    GROUP BY a.persona, o.key"""
_OUTCOME_SUMS = {
    "sqlite": """
        SELECT a.persona, o.key, sum(json_extract(o.value, '$[0]')),
               sum(json_extract(o.value, '$[1]')), count(*),
               sum(:two_b1_squared / (a.epsilon * a.epsilon))"""
    + _SUMS_FROM,
    "postgresql": """
        SELECT a.persona, o.key, sum((o.value ->> 0)::float8), sum((o.value ->> 1)::float8),
               count(*), sum(:two_b1_squared / (a.epsilon * a.epsilon))"""
    + _SUMS_FROM,
}


def read_outcome_sums(conn: Connection, first_week: str, last_week: str) -> list[OutcomeSums]:
    """Every (persona, offer) cell's sums over the uploads of weeks ``first_week..last_week``."""
    rows = conn.execute(
        text(_OUTCOME_SUMS[conn.dialect.name]),
        {
            "first_week": first_week,
            "last_week": last_week,
            "two_b1_squared": 2.0 * OUTCOME_SCALE_AT_1**2,
        },
    )
    return [
        OutcomeSums(str(p), str(o), float(a), float(d), int(n), float(v))
        for p, o, a, d, n, v in rows
    ]


def playbook_with_priors(
    base: dict[str, Any], personas: tuple[Persona, ...], sums: list[OutcomeSums]
) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of the playbook ``base`` whose priors include the window's outcome ``sums``;
    and counts of the cells updated, below their noise and ignored, for the report."""
    playbook = copy.deepcopy(base)
    ids = {p.id for p in personas}
    priors: dict[str, dict[str, list[float]]] = {
        persona: {offer: list(ab) for offer, ab in table.items()}
        for persona, table in playbook.get("priors", {}).items()
        if persona in ids  # a persona the new model lacks would make devices refuse it
    }
    offers = set(playbook.get("offers", {}))
    updated = ignored = below_noise = rows = 0
    for persona, offer, accepted, dismissed, count, variance in sums:
        rows += count
        if persona not in ids or offer not in offers:
            ignored += 1
            continue
        # A sum within NOISE_SDS deviations of its noise would only swamp the prior with noise
        floor = NOISE_SDS * variance**0.5
        gains = [v if v > floor else 0.0 for v in (accepted, dismissed)]
        if not any(gains):
            below_noise += 1
            continue
        alpha, beta = priors.setdefault(persona, {}).get(offer, [1.0, 1.0])
        priors[persona][offer] = [
            round(float(alpha) + gains[0], 3),
            round(float(beta) + gains[1], 3),
        ]
        updated += 1
    playbook["priors"] = priors
    return playbook, {
        "outcome_rows": rows,
        "cells_updated": updated,
        "cells_below_noise": below_noise,
        "cells_ignored": ignored,
    }

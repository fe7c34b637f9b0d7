"""The adaptation playbook: declarative rules from the model bundle, checked when loaded.

A playbook is JSON (``docs/bundle-format.md``)::

    {"format": "edgepersona-playbook/1",
     "surfaces": {"home": {"default": "standard",
                           "layouts": {"standard": {...}, "commute": {...}},
                           "rules": [{"variant": "commute", "when": "moment.moving",
                                      "because": "you are on the move"}]}},
     "offers": {"coffee": {"when": "moment.time_of_day == 'morning'", "because": "..."}},
     "priors": {"commuter": {"coffee": [8, 12]}},
     "exploration": {"habit_shift_threshold": 3.0}}

Rules are tried in order; the first whose condition holds picks the variant, else the
surface's default (and an unknown surface falls back to the ``"*"`` surface or a bare
default). Everything is validated up front, so a bad playbook is refused whole with a
``ModelError`` naming the problem and the device keeps its last good one.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ._conditions import Condition, compile_condition
from ._types import Moment
from .errors import ConditionError, ModelError
from .features import FEATURE_NAMES

FORMAT = "edgepersona-playbook/1"
DEFAULT_VARIANT = "default"
MAX_RULES = 200
# Names a condition may read; "persona.p." and "features." take any persona id or feature.
KNOWN_NAMES = (
    *(f"moment.{name}" for name in Moment._fields),
    "persona.id",
    "persona.name",
    "persona.p.",
    *(f"features.{name}" for name in FEATURE_NAMES),
)


@dataclass(frozen=True)
class Rule:
    variant: str
    when: Condition
    because: str


@dataclass(frozen=True)
class Surface:
    default: str
    layouts: Mapping[str, Mapping[str, Any]]
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class OfferRule:
    when: Condition
    because: str


@dataclass(frozen=True)
class Playbook:
    surfaces: Mapping[str, Surface]
    offers: Mapping[str, OfferRule]
    priors: Mapping[str, Mapping[str, tuple[float, float]]]
    habit_shift_threshold: float

    @classmethod
    def from_dict(cls, data: object, persona_ids: Collection[str]) -> Playbook:
        """Validate and compile ``data``; raises ``ModelError`` saying what is wrong."""
        try:
            return _parse(data, set(persona_ids))
        except ConditionError as exc:
            raise ModelError(f"playbook condition: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"playbook: {exc}") from exc

    def variant(
        self, surface: str, context: Mapping[str, Any]
    ) -> tuple[str, Mapping[str, Any], str]:
        """(variant id, its layout, why) for ``surface`` in ``context``."""
        chosen = self.surfaces.get(surface) or self.surfaces.get("*")
        if chosen is None:
            return DEFAULT_VARIANT, {}, f"no rules for surface {surface!r}: default layout"
        for rule in chosen.rules:
            if rule.when(context):
                return rule.variant, chosen.layouts.get(rule.variant, {}), rule.because
        return (
            chosen.default,
            chosen.layouts.get(chosen.default, {}),
            "no rule matched: default layout",
        )

    def default_variant(self, surface: str) -> tuple[str, Mapping[str, Any]]:
        chosen = self.surfaces.get(surface) or self.surfaces.get("*")
        if chosen is None:
            return DEFAULT_VARIANT, {}
        return chosen.default, chosen.layouts.get(chosen.default, {})

    def eligible(self, offer_id: str, context: Mapping[str, Any]) -> tuple[bool, str]:
        rule = self.offers.get(offer_id)
        if rule is None:
            return True, "no eligibility rule"
        return rule.when(context), rule.because


def _parse(data: object, persona_ids: set[str]) -> Playbook:
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}, got {data.get('format')!r:.40}")
    surfaces = {name: _surface(name, raw) for name, raw in _mapping(data, "surfaces").items()}
    offers = {
        str(offer): OfferRule(_condition(rule, f"offers.{offer}"), str(rule.get("because", "")))
        for offer, rule in _mapping(data, "offers").items()
    }
    priors: dict[str, dict[str, tuple[float, float]]] = {}
    for persona, table in _mapping(data, "priors").items():
        if persona not in persona_ids:
            raise ValueError(f"priors name persona {persona!r}, not one of {sorted(persona_ids)}")
        priors[persona] = {str(o): _beta(ab, f"priors.{persona}.{o}") for o, ab in table.items()}
    threshold = float(_mapping(data, "exploration").get("habit_shift_threshold", 3.0))
    if not math.isfinite(threshold) or threshold <= 0:
        raise ValueError("exploration.habit_shift_threshold must be a positive number")
    return Playbook(surfaces, offers, priors, threshold)


def _surface(name: str, raw: Any) -> Surface:
    if not isinstance(raw, dict):
        raise TypeError(f"surfaces.{name} must be an object")
    layouts = raw.get("layouts", {})
    if not isinstance(layouts, dict) or not all(isinstance(v, dict) for v in layouts.values()):
        raise TypeError(f"surfaces.{name}.layouts must map variant ids to objects")
    default = str(raw.get("default", DEFAULT_VARIANT))
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list) or len(rules_raw) > MAX_RULES:
        raise ValueError(f"surfaces.{name}.rules must be a list of at most {MAX_RULES} rules")
    rules = []
    for i, rule in enumerate(rules_raw):
        where = f"surfaces.{name}.rules[{i}]"
        if not isinstance(rule, dict) or "variant" not in rule:
            raise ValueError(f"{where} needs a variant and a when")
        variant = str(rule["variant"])
        if layouts and variant not in layouts:
            raise ValueError(f"{where} names variant {variant!r} that has no layout")
        rules.append(Rule(variant, _condition(rule, where), str(rule.get("because", ""))))
    return Surface(default, layouts, tuple(rules))


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise TypeError(f"{key} must be an object")
    return value


def _condition(rule: Any, where: str) -> Condition:
    if not isinstance(rule, dict) or not isinstance(rule.get("when", "true"), str):
        raise TypeError(f"{where}.when must be a condition string")
    try:
        return compile_condition(rule.get("when", "true"), known_names=KNOWN_NAMES)
    except ConditionError as exc:
        raise ConditionError(f"{where}: {exc}") from exc


def _beta(raw: Any, where: str) -> tuple[float, float]:
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        raise ValueError(f"{where} must be [alpha, beta]")
    alpha, beta = float(raw[0]), float(raw[1])
    if not (math.isfinite(alpha) and math.isfinite(beta) and alpha > 0 and beta > 0):
        raise ValueError(f"{where} must be two positive finite numbers, got {raw!r:.40}")
    return alpha, beta

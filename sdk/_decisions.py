"""Persona and decisions: the bundle in use, who the user looks like, and ranked offers.

``EdgePersona`` delegates ``persona()``, ``reject_persona()``, ``decide()``, ``feedback()`` and
``use_bundle()`` here, and asks for the values that fences' conditions read.

The caches hang off the feature vector object that the ``features`` function returns
(``DerivedState.feature_vector``): a new one after each commit and on each new local day, the
same object otherwise, so an identity check tells whether what a cache holds is still current.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as check
from ._activity import ActivityWindow
from ._bundle import Bundle, default_bundle, load_bundle
from ._consent import Consent
from ._localtime import Zone, day_key
from ._place_engine import PlaceEngine
from ._ranking import HabitShift, Ranked, habit_shift, mixed_prior, thompson_sample
from ._store import Store
from ._types import Decision, Moment, PersonaEstimate
from .clock import Clock
from .errors import InvalidSignalError, ModelError
from .features import FEATURE_NAMES, FEATURES, feature_vector

EVIDENCE_DAYS = 7  # observed days before the persona model's probabilities count in full
_EXPLORE: dict[str, dict[str, tuple[float, float]]] = {}  # no priors: uniform exploration
# Habit shifts are measured in units of each feature's range, so that shares and counts
# compare; a week-to-week spread below 5% of the range is treated as 5% (noise floor).
_RANGES = np.array([f.high - f.low for f in FEATURES])
HABIT_MIN_STD = 0.05


class Decider:
    """The persona model and playbook of one device; thread-safe like ``EdgePersona``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        zone: Zone,
        consent: Consent,
        activity: ActivityWindow,
        places: PlaceEngine,
        features: Callable[[], tuple[float, ...]],
        context: Callable[[], Moment],
        rng: np.random.Generator,
        lock: threading.Lock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._zone = zone
        self._consent = consent
        self._activity = activity
        self._places = places
        self._features = features
        self._context = context
        self._rng = rng
        self._lock = lock  # shared with the signal intake: decisions are appended like signals
        self._bundle: Bundle | None = None
        self._bundle_error: str | None = None
        self._rejected: set[str] = set()
        self._cached_persona: tuple[tuple[float, ...], dict[str, float]] | None = None
        self._cached_shift: tuple[tuple[float, ...], HabitShift | None] | None = None
        # The mixed prior, valid while the same priors, probabilities and offers come back.
        self._cached_prior: tuple[Any, ...] | None = None
        # Told of each decision while a candidate bundle runs in shadow (see ``_updates``):
        # the features and top persona of a personalized one, ``None`` for the others.
        self.shadow: Callable[[tuple[float, ...] | None, str | None], None] | None = None

    # -- the bundle ---------------------------------------------------------------------------

    @property
    def model_error(self) -> str | None:
        """Why the bundle could not be loaded, if it could not."""
        return self._bundle_error

    def _model(self) -> Bundle | None:
        """The bundle in use, loaded on first need (importing onnxruntime costs ~25 ms)."""
        if self._bundle is None and self._bundle_error is None:
            try:
                self._bundle = default_bundle()
            except (ModelError, OSError) as exc:
                self._bundle_error = str(exc)
        return self._bundle

    def bundle(self) -> Bundle | None:
        """The bundle in use (``None`` without a usable model)."""
        return self._model()

    def use_bundle(self, path: str | Path) -> int:
        """``EdgePersona.use_bundle``: load and check the bundle whole, then switch to it."""
        bundle = load_bundle(Path(path))
        self.swap(bundle)
        return bundle.version

    def swap(self, bundle: Bundle) -> None:
        """Serve ``bundle`` from the next decision on; a decision under way keeps its own."""
        self._bundle, self._bundle_error = bundle, None
        self._cached_persona = None

    # -- the persona ----------------------------------------------------------------------

    def persona(self) -> PersonaEstimate | None:
        """``EdgePersona.persona``: the estimate now, ``None`` without a usable model."""
        bundle = self._model()
        if bundle is None:
            return None
        probabilities = self._probabilities(bundle)
        top = max(probabilities, key=probabilities.__getitem__)
        return PersonaEstimate(
            top,
            bundle.persona_names[top],
            probabilities,
            bundle.persona_traits.get(top, ()),
            bundle.version,
            tuple(sorted(self._rejected)),
        )

    def reject_persona(self, persona_id: str | None) -> None:
        """``EdgePersona.reject_persona``: store the statement; it wins at once."""
        bundle = self._model()
        if persona_id is not None and (bundle is None or persona_id not in bundle.persona_names):
            known = ", ".join(bundle.persona_names) if bundle else "none (no model)"
            raise InvalidSignalError(
                "persona_id", f"{persona_id!r:.40} is unknown; accepted: {known}"
            )
        now = self._clock.time()
        kind, value = ("not_me", persona_id) if persona_id else ("not_me_cleared", "*")
        self._store.write(
            lambda conn: conn.execute(
                "INSERT INTO corrections (ts, kind, value) VALUES (?, ?, ?)", (now, kind, value)
            )
        )
        self._rejected = set() if persona_id is None else self._rejected | {persona_id}
        self._cached_persona = None

    def reload(self) -> None:
        """Read the user's "not me" statements (at open, and after consent is withdrawn)."""
        rows = self._store.read(
            lambda db: db.execute(
                "SELECT kind, value FROM corrections WHERE kind LIKE 'not_me%' ORDER BY id"
            ).fetchall()
        )
        self._rejected = _rejected_personas(rows)

    def _probabilities(self, bundle: Bundle) -> dict[str, float]:
        vector = self._features()
        cached = self._cached_persona
        if cached is not None and cached[0] is vector:
            return cached[1]
        raw = bundle.model.predict_proba(np.asarray(vector, dtype=np.float32))
        # Evidence weighting: a model trained on weeks of behaviour is not sure about a user
        # seen for a day, so until a week is observed, probabilities lean towards uniform.
        now = self._clock.time()
        days = self._activity.activity(day_key(now + self._zone.offset(now))).days
        weight = min(days / EVIDENCE_DAYS, 1.0)
        raw = weight * raw + (1 - weight) / len(raw)
        probabilities = {
            pid: (0.0 if pid in self._rejected else float(p))
            for pid, p in zip(bundle.persona_ids, raw, strict=True)
        }
        total = sum(probabilities.values())
        if total <= 0:  # the user rejected every likely persona: no preference left
            kept = [pid for pid in probabilities if pid not in self._rejected] or list(
                probabilities
            )
            probabilities = {pid: (1 / len(kept) if pid in kept else 0.0) for pid in probabilities}
        else:
            probabilities = {pid: p / total for pid, p in probabilities.items()}
        self._cached_persona = (vector, probabilities)
        return probabilities

    # -- decisions ------------------------------------------------------------------------

    def decide(self, surface: str, offers: list[str] | tuple[str, ...]) -> Decision:
        """``EdgePersona.decide``: check the arguments, choose, rank and log."""
        surface = check.name("surface", surface)
        if not isinstance(offers, (list, tuple)) or len(offers) > 100:
            raise InvalidSignalError("offers", "expected a list of at most 100 offer ids")
        offer_ids = tuple(dict.fromkeys(check.name("offers", o) for o in offers))
        moment = self._context()
        bundle = self._model()
        decision_id = f"{int(moment.ts * 1000):x}-{int(self._rng.integers(1 << 32)):08x}"
        if bundle is None or not self._consent.allows("personalization"):
            if self.shadow is not None:
                self.shadow(None, None)
            return self._unpersonalized(decision_id, surface, offer_ids, moment, bundle)
        probabilities = self._probabilities(bundle)
        top = max(probabilities, key=probabilities.__getitem__)
        if self.shadow is not None:
            self.shadow(self._features(), top)
        context = self.condition_values(moment, bundle, probabilities)
        variant, layout, because = bundle.playbook.variant(surface, context)
        reasons = [
            _persona_reason(bundle, top, probabilities),
            _moment_reason(moment),
            f"Layout '{variant}': {because}",
        ]
        eligible = []
        for offer in offer_ids:
            allowed, offer_because = bundle.playbook.eligible(offer, context)
            if allowed:
                eligible.append(offer)
            else:
                reasons.append(f"Not offering '{offer}' now: only when {offer_because}")
        ranked = self._rank(bundle, eligible, probabilities, reasons)
        shown = ranked.order[0] if ranked.order else None
        propensity = ranked.propensity if shown else None
        with self._lock:
            self._store.append(
                "decision",
                moment.ts,
                self._zone,
                (
                    decision_id,
                    surface,
                    top,
                    variant,
                    json.dumps(list(ranked.order)),
                    shown,
                    propensity,
                    bundle.version,
                ),
            )
            if shown is not None:
                self._store.append("event", moment.ts, self._zone, ("offer_shown", None))
        return Decision(
            decision_id,
            surface,
            True,
            top,
            probabilities,
            variant,
            dict(layout),
            ranked.order,
            tuple(reasons),
            bundle.version,
            propensity,
            moment,
        )

    def _unpersonalized(
        self,
        decision_id: str,
        surface: str,
        offer_ids: tuple[str, ...],
        moment: Moment,
        bundle: Bundle | None,
    ) -> Decision:
        """The playbook's default variant and the offers as given; not logged."""
        why = (
            f"no usable persona model ({self._bundle_error}): default layout, offers as given"
            if self._consent.allows("personalization")
            else "personalization is off: default layout, offers in the order given"
        )
        variant, layout = bundle.playbook.default_variant(surface) if bundle else ("default", {})
        return Decision(
            decision_id,
            surface,
            False,
            None,
            {},
            variant,
            dict(layout),
            offer_ids,
            (why,),
            bundle.version if bundle else None,
            None,
            moment,
        )

    def _rank(
        self,
        bundle: Bundle,
        eligible: list[str],
        probabilities: dict[str, float],
        reasons: list[str],
    ) -> Ranked:
        """Thompson-sample the eligible offers; appends the reasons for the order."""
        priors = bundle.playbook.priors
        shift = self._habit_shift(bundle.playbook.habit_shift_threshold)
        if shift is not None and shift.shifted:
            priors = _EXPLORE  # every offer back to the uninformed prior
            change = ", ".join(f"{name} {z:+.1f} sd" for name, z in shift.top_changes)
            reasons.append(f"Exploring new offers: your habits changed this week ({change})")
        cached = self._cached_prior
        if not (
            cached and cached[0] is priors and cached[1] is probabilities and cached[2] == eligible
        ):
            cached = (
                priors,
                probabilities,
                eligible,
                *mixed_prior(eligible, priors, probabilities),
            )
            self._cached_prior = cached
        ranked = thompson_sample(eligible, cached[3], cached[4], self._rng)
        if ranked.order:
            reasons.append(
                f"Offers ranked by sampling each one's success rate for people like you; "
                f"'{ranked.order[0]}' came first with probability {ranked.propensity:.2f}"
            )
        return ranked

    def _habit_shift(self, threshold: float) -> HabitShift | None:
        """This week's features against the user's previous weeks, cached per commit."""
        vector = self._features()
        if self._cached_shift is not None and self._cached_shift[0] is vector:
            return self._cached_shift[1]
        now = self._clock.time()
        today = day_key(now + self._zone.offset(now))
        stays = self._places.window(now)
        labels = self._places.labels()
        weeks = []
        for week in range(4):
            activity = self._activity.activity(today, days=7, skip_days=7 * week)
            if activity.days == 0:
                break
            end, start = now - 7 * 86400 * week, now - 7 * 86400 * (week + 1)
            in_week = [st for st in stays if start <= st.end < end]
            weeks.append(feature_vector(activity, in_week, labels))
        shift = None
        if len(weeks) >= 3:
            scaled = [list(np.asarray(week) / _RANGES) for week in weeks]
            shift = habit_shift(
                scaled[0], scaled[1:], FEATURE_NAMES, threshold=threshold, min_std=HABIT_MIN_STD
            )
        self._cached_shift = (vector, shift)
        return shift

    def feedback(self, decision: Decision, offer_id: str, outcome: str) -> bool:
        """``EdgePersona.feedback``; ``False`` without consent (the caller counts the drop)."""
        if outcome not in ("accepted", "dismissed"):
            raise InvalidSignalError(
                "outcome", f"{outcome!r:.20} is unknown; accepted: accepted, dismissed"
            )
        if not isinstance(decision, Decision) or offer_id not in decision.offers:
            raise InvalidSignalError("offer_id", "expected one of the offers of that decision")
        if not self._consent.allows("personalization"):
            return False
        now = self._clock.time()
        with self._lock:
            self._store.append(
                "feedback", now, self._zone, (decision.id, offer_id, outcome, decision.persona)
            )
            self._store.append("event", now, self._zone, (f"offer_{outcome}", None))
        return True

    # -- what conditions read ---------------------------------------------------------------

    def condition_values(
        self,
        moment: Moment,
        bundle: Bundle | None = None,
        probabilities: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """What conditions (playbook rules, fences) can read."""
        persona: dict[str, Any] = {"id": None, "name": None, "p": {}}
        bundle = bundle or (self._model() if self._consent.allows("personalization") else None)
        if bundle is not None:
            probabilities = probabilities or self._probabilities(bundle)
            top = max(probabilities, key=probabilities.__getitem__)
            persona = {"id": top, "name": bundle.persona_names[top], "p": probabilities}
        features = dict(zip(FEATURE_NAMES, self._features(), strict=True))
        return {"moment": moment.as_dict(), "persona": persona, "features": features}


def _rejected_personas(rows: list[tuple[str, str]]) -> set[str]:
    rejected: set[str] = set()
    for kind, value in rows:
        rejected = set() if kind == "not_me_cleared" else rejected | {value}
    return rejected


def _persona_reason(bundle: Bundle, top: str, probabilities: dict[str, float]) -> str:
    traits = ", ".join(
        ("more " if t[0] == "+" else "less ") + t[1:].replace("_", " ")
        for t in bundle.persona_traits.get(top, ())[:2]
    )
    standout = f" (people like this show {traits})" if traits else ""
    return f"You look most like '{bundle.persona_names[top]}' ({probabilities[top]:.0%}){standout}"


def _moment_reason(moment: Moment) -> str:
    day = "weekend day" if moment.is_weekend else "weekday"
    where = {"moving": "you are on the move", "unknown": "your place is unknown"}.get(
        moment.place, f"you are at {moment.place}"
    )
    return f"It is {moment.time_of_day} on a {day} and {where}"

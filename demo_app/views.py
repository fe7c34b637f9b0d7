"""What each screen shows, built from the SDK's answers by pure functions (no Kivy, no I/O).

The screens only lay these values out, so everything a user reads is tested without a window.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from edgepersona.sdk import Decision, PersonaEstimate
from edgepersona.sdk.features import FEATURES

from . import catalog
from .catalog import Card, Offer, Shortcut

__all__ = [
    "FeatureView",
    "HomeView",
    "OfferItem",
    "PersonaBar",
    "PlaceView",
    "audit_lines",
    "feature_views",
    "hidden_offers",
    "home_view",
    "model_history",
    "model_text",
    "moment_text",
    "offer_items",
    "persona_bars",
    "place_views",
    "readable",
    "sync_text",
    "upload_text",
]

_GREETINGS = {
    "night": "Good night",
    "morning": "Good morning",
    "midday": "Hello",
    "afternoon": "Good afternoon",
    "evening": "Good evening",
    "late": "Good evening",
}
_PLACES = {"home": "at home", "work": "at work", "other": "out", "moving": "on the move"}
_DEFAULT_CARDS = ("for_you", "offers")
_OFFER_REASON = "Not offering"
_LAYOUT = re.compile(r"^Layout '([\w-]+)': ")
_QUOTED = re.compile(r"'([\w-]+)'")


class HomeView(NamedTuple):
    theme: str  # "light" or "dark", from the decision's layout
    variant: str
    personalized: bool
    greeting: str
    cards: tuple[Card, ...]
    shortcuts: tuple[Shortcut, ...]
    top_offers: tuple[Offer, ...]
    reasons: tuple[str, ...]  # why this layout: persona, moment, rule


class OfferItem(NamedTuple):
    offer: Offer
    rank: int  # 1 = best for this user now


class PersonaBar(NamedTuple):
    id: str
    name: str
    probability: float
    colour: str
    rejected: bool


class PlaceView(NamedTuple):
    id: int
    label: str  # home, work or other
    x_m: float  # metres east of the map's centre
    y_m: float  # metres north
    visits: int
    hours: float


class FeatureView(NamedTuple):
    name: str
    value: float
    fraction: float  # of the feature's documented range, for a bar
    description: str


def home_view(decision: Decision) -> HomeView:
    layout = decision.layout
    return HomeView(
        theme=str(layout.get("theme", "light")),
        variant=decision.variant,
        personalized=decision.personalized,
        greeting=_GREETINGS.get(decision.moment.time_of_day, "Hello"),
        cards=tuple(catalog.card(c) for c in _ids(layout.get("cards")) or _DEFAULT_CARDS),
        shortcuts=tuple(catalog.shortcut(s) for s in _ids(layout.get("shortcuts"))),
        top_offers=tuple(catalog.offer(o) for o in decision.offers[:2]),
        # Personalised decisions give persona, moment and layout first, then offer details.
        reasons=tuple(
            readable(r)
            for r in (decision.reasons[:3] if decision.personalized else decision.reasons)
        ),
    )


def _ids(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def offer_items(decision: Decision) -> tuple[OfferItem, ...]:
    return tuple(
        OfferItem(catalog.offer(o), rank) for rank, o in enumerate(decision.offers, start=1)
    )


def hidden_offers(decision: Decision) -> tuple[str, ...]:
    """Why the offers not shown now are held back, in the SDK's words."""
    return tuple(readable(r) for r in decision.reasons if r.startswith(_OFFER_REASON))


def readable(reason: str) -> str:
    """An SDK reason with the app's names: offer titles for offer ids, "Commute layout"."""
    reason = _LAYOUT.sub(lambda m: f"{catalog.words(m.group(1))} layout: ", reason)
    return _QUOTED.sub(
        lambda m: catalog.offer(m.group(1)).title if m.group(1) in catalog.OFFERS else m.group(0),
        reason,
    )


def moment_text(local_iso: str, place: str, moving: bool) -> str:
    """``Tue 08:12 · on the move``: the moment as the top bar shows it."""
    local = datetime.fromisoformat(local_iso)
    where = _PLACES["moving"] if moving else _PLACES.get(place, "")
    when = local.strftime("%a %d %b · %H:%M")
    return f"{when} · {where}" if where else when


def persona_bars(estimate: PersonaEstimate) -> tuple[PersonaBar, ...]:
    names = {estimate.id: estimate.name}
    return tuple(
        PersonaBar(
            persona_id,
            names.get(persona_id) or catalog.persona_name(persona_id),
            p,
            catalog.persona_colour(persona_id),
            persona_id in estimate.rejected,
        )
        for persona_id, p in sorted(estimate.probabilities.items(), key=lambda kv: -kv[1])
    )


def place_views(places: Sequence[Mapping[str, Any]], limit: int = 12) -> tuple[PlaceView, ...]:
    """The most visited places near home, in metres from home (from their mean without one).

    An equirectangular view is exact enough across a city and needs no map tiles. Trips far
    away would shrink the neighbourhood to a dot, so places more than twice as far as work
    (and at least 3 km) are left out: ``len(places) - len(result)`` says how many.
    """
    ranked = sorted(places, key=lambda p: (p["label"] == "other", -p["visit_count"]))
    if not ranked:
        return ()
    home = next((p for p in ranked if p["label"] == "home"), None)
    lat0 = home["lat"] if home else sum(p["lat"] for p in ranked) / len(ranked)
    lon0 = home["lon"] if home else sum(p["lon"] for p in ranked) / len(ranked)
    per_lat = 111_320.0
    per_lon = per_lat * math.cos(math.radians(lat0))

    def offset(p: Mapping[str, Any]) -> tuple[float, float]:
        return (p["lon"] - lon0) * per_lon, (p["lat"] - lat0) * per_lat

    work = next((p for p in ranked if p["label"] == "work"), None)
    reach = max(3000.0, 2 * math.hypot(*offset(work)) if work else 0.0)
    return tuple(
        PlaceView(
            int(p["id"]), str(p["label"]), x, y, int(p["visit_count"]), float(p["dwell_s"]) / 3600
        )
        for p in ranked
        for x, y in (offset(p),)
        if math.hypot(x, y) <= reach
    )[:limit]


def feature_views(values: Mapping[str, float]) -> tuple[FeatureView, ...]:
    return tuple(
        FeatureView(
            f.name,
            values[f.name],
            (values[f.name] - f.low) / (f.high - f.low),
            f.description,
        )
        for f in FEATURES
        if f.name in values
    )


def upload_text(upload: Mapping[str, Any] | None, zone: tzinfo | None) -> str:
    """When the last upload was sent, its size, and its payload exactly as stored."""
    if upload is None:
        return ""
    payload = json.dumps(upload["payload"], indent=1, sort_keys=True)
    return f"Sent {_when(upload['sent_at'], zone)}, {upload['bytes']} bytes:\n{payload}"


def audit_lines(rows: Iterable[Mapping[str, Any]], zone: tzinfo | None) -> tuple[str, ...]:
    """Each consent change as one line, newest first."""
    lines = []
    for row in rows:
        when = _when(row["ts"], zone)
        action = "allowed" if row["action"] == "grant" else "turned off"
        lines.append(f"{when}  {row['purpose']} {action} ({row['source']})")
    return tuple(reversed(lines))


def sync_text(status: Mapping[str, Any], allowed: bool, url: str, zone: tzinfo | None) -> str:
    """The state of sync in two short lines, or why it is off."""
    if not url:
        return "Sync is off: no server is set. Nothing is ever sent."
    if not allowed:
        return "Sync is off: not allowed in the Privacy centre. Nothing is sent."
    last = status.get("last_sync_at")
    when = _when(last, zone) if last is not None else "never"
    epsilon = status["epsilon"]
    return (
        f"Last sync: {when}. Waiting to send: {status['pending']}.\n"
        f"Privacy budget this week: {epsilon['spent']:.2f} of {epsilon['budget']:.2f}."
    )


def model_text(status: Mapping[str, Any]) -> str:
    if status.get("version") is None:
        return "No model is usable: the app shows its default layout."
    source = "downloaded" if status.get("source") == "downloaded" else "built into the app"
    shadow = status.get("shadow")
    trying = (
        f"\nTrying v{shadow['version']} alongside: {shadow['decisions']} of {shadow['of']} "
        "decisions compared."
        if shadow
        else ""
    )
    return f"Model in use: v{status['version']}, {source}.{trying}"


def model_history(status: Mapping[str, Any], zone: tzinfo | None) -> str:
    """Bundles adopted, shadowed and rejected, newest first, with why."""
    lines = [
        f"v{event['version']} {event['event']} {_when(event['at'], zone)}"
        + (f": {event['reason']}" if event.get("reason") else "")
        for event in status.get("history") or []
    ]
    return "\n".join(lines) or "Only the model that came with the app so far."


def _when(ts: float, zone: tzinfo | None) -> str:
    return datetime.fromtimestamp(ts, zone).strftime("%d %b %H:%M")

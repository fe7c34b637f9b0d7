"""``GET /dashboard``: the operator's page, server-rendered, charts drawn as inline SVG.

It shows fleet aggregates only (counts, shares, epsilon statistics, model and retrain history;
never a device id or a device's data), yet what the fleet does and which model it runs is an
operator's business, so the page sits behind the admin API key, like the admin endpoints:

* a browser signs in with HTTP Basic: any user name, the admin API key as the password (a
  wrong key asks again);
* a tool may send ``Authorization: Bearer <admin API key>`` instead, as for ``/v1/admin``;
* while ``EDGEPERSONA_ADMIN_API_KEY`` is unset the page is off (403), as the admin API is.

The page loads nothing else: no script, style sheet, font or image from anywhere, and its
``Content-Security-Policy`` forbids the browser to fetch any. It only reads the database, with
the bounded queries of ``backend.fleet``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from . import charts
from .config import admin_key_matches
from .db import get_db
from .errors import ApiError
from .fleet import UPLOAD_DAYS, WEEKS, Fleet, ModelVersion, read_fleet
from .persona_mix import Estimate, PersonaMix

__all__ = ["CONTENT_SECURITY_POLICY", "bp"]

bp = Blueprint("dashboard", __name__, template_folder="templates")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_CHALLENGE = 'Basic realm="edgepersona dashboard", charset="UTF-8"'
_UPLOADS_COLOUR = "#4e79a7"
_EPSILON_COLOUR = "#b07aa1"
_OTHER_COLOUR = "#bab0ac"
_NOISY_HALF_WIDTH = 0.1  # an interval wider than ±10 points (95%): say so


@bp.before_request
def _require_admin_key() -> None:
    config = current_app.config
    if config["ADMIN_API_KEY_SHA256"] is None:
        raise ApiError(
            403,
            "forbidden",
            "The dashboard is off on this server, as are the admin endpoints; set "
            "EDGEPERSONA_ADMIN_API_KEY to turn them on.",
        )
    credentials = request.authorization
    if credentials is not None and credentials.type == "bearer":
        if not admin_key_matches(config, credentials.token or ""):
            raise ApiError(403, "forbidden", "The bearer credential is not the admin API key.")
        return
    if credentials is None or not admin_key_matches(config, credentials.password or ""):
        raise ApiError(
            401,
            "unauthorized",
            "The dashboard needs the admin API key: sign in with any user name and the key "
            "(EDGEPERSONA_ADMIN_API_KEY) as the password.",
            headers={"WWW-Authenticate": _CHALLENGE},
        )


@bp.get("/dashboard")
def dashboard() -> Response:
    """The operator page (HTML)."""
    db = get_db()
    with db.begin():
        fleet = read_fleet(db, current_app.config["CLOCK"].time())
    response = Response(render_template("dashboard.html", **page(fleet)), mimetype="text/html")
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        }
    )
    return response


def page(fleet: Fleet) -> dict[str, Any]:
    """What the template shows: numbers formatted, charts drawn."""
    colours = persona_colours(fleet)
    return {
        "generated": _when(fleet.now),
        "stats": _stats(fleet),
        "personas": _persona_panel(fleet, colours),
        "uploads": _uploads_panel(fleet),
        "privacy": _privacy_panel(fleet),
        "models": [_model_row(fleet, model, colours) for model in fleet.models],
        "retrains": [
            {
                "when": _when(r.created_at),
                "ago": _ago(fleet.now, r.created_at),
                "weeks": _week_span(r.first_week, r.last_week),
                "devices": f"{r.devices:,}",
                "device_weeks": f"{r.device_weeks:,}",
                "gates": r.gates,
                "published": r.published_version,
                "refusal": r.refusal,
            }
            for r in fleet.retrains
        ],
        "limits": {"weeks": WEEKS, "days": UPLOAD_DAYS},
    }


def persona_colours(fleet: Fleet) -> dict[str, str]:
    """One palette colour per persona id, by its place in ``fleet.personas``."""
    palette = charts.PALETTE
    return {pid: palette[i % len(palette)] for i, pid in enumerate(fleet.personas)}


def _stats(fleet: Fleet) -> list[dict[str, str]]:
    serving = max(fleet.models, key=lambda m: m.share, default=None)
    candidate = fleet.models[0] if fleet.models and fleet.models[0].share < 1 else None
    this_week = next((b for b in fleet.budgets if b.week == fleet.week), None)
    return [
        {"key": "devices", "label": "Devices registered", "value": f"{fleet.devices:,}"},
        {
            "key": "uploads_this_week",
            "label": f"Uploads this week ({fleet.week})",
            "value": f"{fleet.uploads_this_week:,}",
        },
        {
            "key": "current_version",
            "label": "Serving most devices",
            "value": f"v{serving.version}" if serving and serving.share > 0 else "none",
            "note": f"{serving.share:.0%} of devices" if serving and serving.share > 0 else "",
        },
        {
            "key": "newest_version",
            "label": "Newest version",
            "value": f"v{candidate.version}" if candidate else "-",
            "note": f"rolled out to {candidate.rollout_percent}%" if candidate else "",
        },
        {
            "key": "median_epsilon",
            "label": "Median ε this week",
            "value": f"{this_week.p50:g}" if this_week else "-",
        },
    ]


def _persona_panel(fleet: Fleet, colours: dict[str, str]) -> dict[str, Any] | None:
    mix = fleet.persona_mix
    if mix is None:
        return None
    panel: dict[str, Any] = {"version": mix.version, "left_out": _left_out(mix)}
    if not mix.overall.uploads:
        return {**panel, "chart": None, "uploads": f"{sum(mix.uploads):,}"}
    names = dict(mix.personas)
    places = {pid: i for i, (pid, _) in enumerate(mix.personas)}
    ordered = [pid for pid in fleet.personas if pid in names]
    series = [
        charts.Series(
            pid,
            names[pid],
            colours[pid],
            tuple(_shown(e, places[pid]) if e.uploads else None for e in mix.estimates),
            tuple(
                f"{week} · {names[pid]}: {_share_text(e, places[pid])} from "
                f"{_uploads(e.uploads)} with a label{_clipped_note(e, places[pid])}"
                for week, e in zip(mix.weeks, mix.estimates, strict=True)
            ),
        )
        for pid in ordered
    ]
    widest = max(
        e.half_width(i) for e in mix.estimates if e.uploads for i in range(len(mix.personas))
    )
    latest_week, latest = next(
        (w, e)
        for w, e in zip(reversed(mix.weeks), reversed(mix.estimates), strict=True)
        if e.uploads
    )
    return {
        **panel,
        "chart": charts.share_columns(
            [_short_week(w) for w in mix.weeks],
            series,
            description=(
                f"Estimated persona shares per ISO week with 95% intervals, personas of "
                f"model v{mix.version}"
            ),
            empty_titles=[
                f"{week}: no labelled uploads ({total:,} uploads)"
                for week, total in zip(mix.weeks, mix.uploads, strict=True)
            ],
            width=1180,
            height=280,
        ),
        "legend": [
            {
                "key": pid,
                "name": names[pid],
                "colour": colours[pid],
                "share": _share_text(mix.overall, places[pid]),
            }
            for pid in ordered
        ],
        "latest": {
            "week": latest_week,
            "uploads": f"{latest.uploads:,}",
            "points": _points(max(latest.half_width(i) for i in range(len(mix.personas)))),
        },
        "widest": _points(widest),
        "noisy": widest > _NOISY_HALF_WIDTH,
        "labelled": f"{mix.overall.uploads:,}",
        "first_week": mix.weeks[0],
        "last_week": mix.weeks[-1],
    }


def _shown(estimate: Estimate, index: int) -> tuple[float, float, float]:
    """``(low, share, high)`` of the 95% interval, each clipped to [0, 1] for drawing."""
    share, half = estimate.shares[index], estimate.half_width(index)
    return _clip(share - half), _clip(share), _clip(share + half)


def _share_text(estimate: Estimate, index: int) -> str:
    """``"58% ± 3.1 points (95%)"``: the share as drawn (clipped to [0, 1]) and its interval."""
    share, half = estimate.shares[index], estimate.half_width(index)
    digits = 1 if half < 0.01 else 0
    return f"{_clip(share):.{digits}%} ± {_points(half)} points (95%)"


def _clipped_note(estimate: Estimate, index: int) -> str:
    """The raw estimate, when it lies outside [0, 1] and so is drawn clipped."""
    share = estimate.shares[index]
    return "" if 0.0 <= share <= 1.0 else f"; the estimate, {share:.0%}, is drawn clipped"


def _clip(share: float) -> float:
    return min(max(share, 0.0), 1.0)


def _points(half_width: float) -> str:
    points = 100 * half_width
    return f"{points:.1f}" if points < 10 else f"{points:.0f}"


def _left_out(mix: PersonaMix) -> str:
    """What the estimates leave out, over the weeks shown; empty when nothing is."""
    unlabelled, unusable = sum(mix.unlabelled), sum(mix.unusable)
    parts = []
    if unlabelled:
        parts.append(f"{_uploads(unlabelled)} without a label (stored before schema version 5)")
    if unusable:
        parts.append(
            f"{_uploads(unusable)} whose label could not be used (a persona their model does "
            "not have, or a model not in the registry)"
        )
    return "Left out: " + " and ".join(parts) + "." if parts else ""


def _uploads(count: int) -> str:
    return f"{count:,} upload{'' if count == 1 else 's'}"


def _uploads_panel(fleet: Fleet) -> dict[str, Any] | None:
    days = fleet.uploads_per_day
    total = sum(count for _, count in days)
    if total == 0:
        return None
    return {
        "total": f"{total:,}",
        "chart": charts.columns(
            [f"{day.day} {day:%b}" for day, _ in days],
            [float(count) for _, count in days],
            description=f"Uploads received per day over the last {len(days)} days (UTC)",
            titles=[f"{day:%a %d %b %Y}: {count:,} uploads" for day, count in days],
            colour=_UPLOADS_COLOUR,
            label_every=7,
        ),
        "facts": _upload_facts(days),
    }


def _upload_facts(days: tuple[tuple[dt.date, int], ...]) -> list[tuple[str, str]]:
    busiest_day, busiest = max(reversed(days), key=lambda day: day[1])
    last_week = sum(count for _, count in days[-7:])
    return [
        ("Today so far", f"{days[-1][1]:,}"),
        ("Last 7 days", f"{last_week:,}"),
        ("Daily average", f"{sum(count for _, count in days) / len(days):,.1f}"),
        ("Busiest day", f"{busiest:,} on {busiest_day.day} {busiest_day:%b}"),
    ]


def _privacy_panel(fleet: Fleet) -> dict[str, Any] | None:
    if not fleet.budgets:
        return None
    return {
        "chart": charts.range_columns(
            [_short_week(b.week) for b in fleet.budgets],
            [(b.p5, b.p50, b.p95) for b in fleet.budgets],
            description="Epsilon per upload by ISO week: median, 5th to 95th percentile",
            titles=[
                f"{b.week}: median ε {b.p50:g}, 5th-95th percentile {b.p5:g}-{b.p95:g}, "
                f"mean {b.mean:.2f}, total {b.total:,.1f} over {b.uploads:,} uploads"
                for b in fleet.budgets
            ],
            colour=_EPSILON_COLOUR,
        ),
        "rows": [
            {
                "week": b.week,
                "uploads": f"{b.uploads:,}",
                "total": f"{b.total:,.1f}",
                "mean": f"{b.mean:.2f}",
                "p50": f"{b.p50:g}",
                "p95": f"{b.p95:g}",
                "max": f"{b.max:g}",
            }
            for b in reversed(fleet.budgets)
        ],
    }


def _model_row(fleet: Fleet, model: ModelVersion, colours: dict[str, str]) -> dict[str, Any]:
    kind = "model" if model.source_version is None else f"rollback to v{model.source_version}"
    return {
        "version": model.version,
        "kind": kind,
        "created": _when(model.created_at),
        "ago": _ago(fleet.now, model.created_at),
        "rollout": model.rollout_percent,
        "meter": charts.meter(
            model.rollout_percent,
            colour=_UPLOADS_COLOUR if model.share > 0 else _OTHER_COLOUR,
            description=f"v{model.version} rolled out to {model.rollout_percent}%",
        ),
        "share": f"{model.share:.0%}",
        "personas": [
            {"name": name, "colour": colours.get(pid, _OTHER_COLOUR)}
            for pid, name in sorted(model.personas, key=lambda p: fleet.personas.index(p[0]))
        ],
    }


def _week_span(first: str, last: str) -> str:
    """``2026-W07`` to ``W10`` with an en dash; the year is repeated only when it changes."""
    same_year = first[:5] == last[:5]
    return f"{first} \u2013 {last[5:] if same_year else last}"


def _short_week(week: str) -> str:
    return week.split("-")[1]  # "2026-W10" -> "W10"; tooltips give the year


def _when(ts: float) -> str:
    when = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    return f"{when.day} {when:%b %Y %H:%M} UTC"


def _ago(now: float, ts: float) -> str:
    seconds = max(0.0, now - ts)
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"

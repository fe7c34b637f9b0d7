"""The five persona archetypes of the synthetic population, with the behaviour each one plays.

A persona is the centre of a kind of life: when someone sleeps and works, where they go, which
kinds of apps they open at which hours, and how they shop in the host app. The generator in
``population`` perturbs every number per device (and some days off-type), so these are
tendencies, not rules; classes overlap as real people do.

App ids come from pools per category; every id is checked against the SDK's own
``AppCategoryResolver`` when this module loads, and one that no longer resolves to its intended
category is left out rather than mislabelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from edgepersona.sdk._categories import AppCategoryResolver

__all__ = ["APP_POOLS", "LAUNCHERS", "PERSONAS", "Daypart", "Mix", "Persona", "persona"]

Mix = tuple[tuple[str, float], ...]  # (category or place kind, relative weight)


def _mix(spec: str) -> Mix:
    """``"news:3 social:1.5"`` -> ``(("news", 3.0), ("social", 1.5))``."""
    return tuple((key, float(weight)) for key, weight in (item.split(":") for item in spec.split()))


@dataclass(frozen=True)
class Daypart:
    """App use from ``start_h`` to ``end_h`` local time, while awake and not out or at work."""

    start_h: int
    end_h: int
    sessions_per_h: float
    mix: Mix


@dataclass(frozen=True)
class Persona:
    """An archetype's behavioural parameters; hours are local, past 24 means after midnight."""

    id: str
    name: str
    description: str
    wake_h: float
    sleep_h: float
    weekend_lag_h: float  # weekends start and end this much later
    office_days: tuple[int, int]  # fewest and most days a week at a workplace
    work_hours: tuple[float, float]
    dayparts: tuple[Daypart, ...]  # cover 0-24 in order
    moving_mix: Mix  # app categories while travelling
    work_mix: Mix  # at the workplace
    out_mix: Mix  # at any other place away from home
    dwell_scale: Mix  # multiplies a category's typical foreground time
    outings_weekday: float  # mean outings on a weekday
    outings_weekend: float
    place_kinds: Mix  # what kind of place an outing goes to
    new_place_share: float  # share of outings to a place never visited before
    far_trip_share: float  # share of new places 5-40 km from home
    preferred_apps: tuple[str, ...]  # favoured when a device picks its favourite apps
    shop_sessions_per_day: float  # host-app visits
    views_per_session: float
    cart_per_view: float
    purchase_per_cart: float
    offer_shown_per_session: float
    offer_accept: float
    offer_dismiss: float
    basket: float  # median item price in the host app


def _dayparts(*parts: tuple[int, int, float, str]) -> tuple[Daypart, ...]:
    return tuple(Daypart(start, end, rate, _mix(spec)) for start, end, rate, spec in parts)


PERSONAS: tuple[Persona, ...] = (
    Persona(
        id="commuter",
        name="Commuting professional",
        description="Weekday office hours with commutes; news and work apps in the morning, "
        "music on the way, moderate shopping.",
        wake_h=6.75, sleep_h=23.25, weekend_lag_h=1.5, office_days=(4, 5), work_hours=(9, 18),
        dayparts=_dayparts(
            (0, 6, 1.0, "communication:2 social:2 music_video:1"),
            (6, 10, 3.0, "news:3 communication:3 productivity:2 social:1.5 browser:1 "
                         "music_video:1"),
            (10, 18, 1.5, "communication:3 social:2 browser:1.5 news:1 shopping:1 music_video:1"),
            (18, 22, 2.5, "social:2.5 music_video:2.5 communication:2 shopping:1 browser:1 "
                          "games:0.5"),
            (22, 24, 2.0, "social:2 music_video:2 communication:1.5 news:0.5"),
        ),
        moving_mix=_mix("music_video:4 news:2 communication:2 social:1.5 maps_travel:1"),
        work_mix=_mix("communication:3 productivity:3 browser:1.5 social:1 news:1 shopping:0.5"),
        out_mix=_mix("communication:2 social:2 maps_travel:1 music_video:1 shopping:1 system:0.5"),
        dwell_scale=_mix("productivity:1.3"),
        outings_weekday=0.35, outings_weekend=1.2,
        place_kinds=_mix("shop:3 cafe:2 restaurant:2 gym:2 friend:2 park:1 mall:1"),
        new_place_share=0.1, far_trip_share=0.05,
        preferred_apps=("com.spotify.music", "com.google.android.apps.magazines",
                        "com.nytimes.android", "com.microsoft.teams", "com.Slack",
                        "com.microsoft.office.outlook", "com.linkedin.android",
                        "com.google.android.calendar"),
        shop_sessions_per_day=0.7, views_per_session=2.5, cart_per_view=0.1,
        purchase_per_cart=0.35, offer_shown_per_session=0.5, offer_accept=0.1,
        offer_dismiss=0.6, basket=35.0,
    ),
    Persona(
        id="homebody_streamer",
        name="Homebody streamer",
        description="Mostly at home; long video and music sessions in the evening and late at "
        "night, few places, food delivery.",
        wake_h=8.5, sleep_h=25.0, weekend_lag_h=1.0, office_days=(0, 1), work_hours=(9.5, 17.5),
        dayparts=_dayparts(
            (0, 3, 2.0, "music_video:5 social:1.5 communication:1"),
            (3, 8, 0.5, "music_video:2 social:1 communication:1"),
            (8, 12, 1.5, "communication:2 social:2 music_video:2 browser:1 productivity:1"),
            (12, 18, 1.5, "music_video:2.5 social:2 communication:2 shopping:1 browser:1"),
            (18, 24, 2.2, "music_video:5 social:1.5 shopping:1.5 communication:1 games:0.5"),
        ),
        moving_mix=_mix("music_video:3 social:2 communication:2"),
        work_mix=_mix("communication:3 productivity:2 music_video:1 social:1"),
        out_mix=_mix("communication:2 social:2 music_video:1"),
        dwell_scale=_mix("music_video:1.8"),
        outings_weekday=0.2, outings_weekend=0.5,
        place_kinds=_mix("shop:4 friend:1 cafe:1 restaurant:1"),
        new_place_share=0.03, far_trip_share=0.0,
        preferred_apps=("com.netflix.mediaclient", "com.google.android.youtube",
                        "com.disney.disneyplus", "tv.twitch.android.app", "com.wbd.stream",
                        "com.ubercab.eats", "com.dd.doordash", "com.deliveroo.orderapp",
                        "com.instacart.client"),
        shop_sessions_per_day=0.8, views_per_session=2.0, cart_per_view=0.12,
        purchase_per_cart=0.45, offer_shown_per_session=0.6, offer_accept=0.15,
        offer_dismiss=0.5, basket=28.0,
    ),
    Persona(
        id="night_owl_gamer",
        name="Night-owl gamer",
        description="Active from 20:00 to 03:00, games dominate, late wake-up, few places, "
        "chat and social at night.",
        wake_h=11.5, sleep_h=27.5, weekend_lag_h=1.0, office_days=(0, 2), work_hours=(12, 17),
        dayparts=_dayparts(
            (0, 4, 3.0, "games:4 communication:2 social:2 music_video:1.5"),
            (4, 11, 0.3, "games:1.5 communication:1 social:1"),
            (11, 17, 1.2, "games:2.5 social:2 communication:2 music_video:1.5 browser:0.5"),
            (17, 20, 1.8, "games:3 social:1.5 communication:1.5 music_video:1.5"),
            (20, 24, 3.0, "games:4.5 communication:2 social:2 music_video:1.5"),
        ),
        moving_mix=_mix("music_video:3 games:2 social:2 communication:2"),
        work_mix=_mix("communication:2 social:2 games:1.5 browser:1 productivity:1"),
        out_mix=_mix("communication:2 social:2 games:1"),
        dwell_scale=_mix("games:1.3"),
        outings_weekday=0.25, outings_weekend=0.6,
        place_kinds=_mix("shop:2 friend:3 cafe:1 restaurant:1"),
        new_place_share=0.05, far_trip_share=0.02,
        preferred_apps=("com.supercell.clashroyale", "com.tencent.ig", "com.roblox.client",
                        "com.miHoYo.GenshinImpact", "com.mobile.legends", "com.epicgames.fortnite",
                        "com.discord", "tv.twitch.android.app", "com.dts.freefireth"),
        shop_sessions_per_day=0.4, views_per_session=1.5, cart_per_view=0.08,
        purchase_per_cart=0.4, offer_shown_per_session=0.4, offer_accept=0.06,
        offer_dismiss=0.7, basket=25.0,
    ),
    Persona(
        id="weekend_explorer",
        name="Weekend explorer",
        description="An ordinary weekday job; weekends at many places (parks, cafes, trips "
        "5-40 km away) with maps, travel and social sharing.",
        wake_h=7.0, sleep_h=23.5, weekend_lag_h=0.5, office_days=(5, 5), work_hours=(9, 17.5),
        dayparts=_dayparts(
            (0, 6, 1.0, "social:2 communication:2 music_video:1"),
            (6, 10, 2.5, "communication:3 news:2 social:2 maps_travel:1 music_video:1"),
            (10, 18, 1.5, "communication:3 social:2 maps_travel:1.5 browser:1.5 news:1"),
            (18, 22, 2.2, "social:3 music_video:2 communication:2 maps_travel:1.5 browser:1"),
            (22, 24, 1.8, "social:3 music_video:1.5 maps_travel:1 communication:1"),
        ),
        moving_mix=_mix("maps_travel:4 music_video:2 social:2 communication:1.5"),
        work_mix=_mix("communication:3 productivity:3 browser:1.5 maps_travel:1 social:1"),
        out_mix=_mix("social:4 maps_travel:3 system:2 communication:1.5"),
        dwell_scale=_mix("maps_travel:1.5"),
        outings_weekday=0.4, outings_weekend=3.2,
        place_kinds=_mix("park:3 cafe:3 restaurant:2 trip:3 friend:1 shop:1"),
        new_place_share=0.7, far_trip_share=0.35,
        preferred_apps=("com.google.android.apps.maps", "com.citymapper.app.release",
                        "com.booking", "com.airbnb.android", "com.tripadvisor.tripadvisor",
                        "com.instagram.android", "com.google.android.GoogleCamera",
                        "com.sec.android.app.camera"),
        shop_sessions_per_day=0.5, views_per_session=2.0, cart_per_view=0.1,
        purchase_per_cart=0.3, offer_shown_per_session=0.5, offer_accept=0.12,
        offer_dismiss=0.55, basket=40.0,
    ),
    Persona(
        id="deal_hunter",
        name="Deal hunter",
        description="Shopping apps all day, many product views and carts, accepts offers "
        "often, visits shops and malls.",
        wake_h=7.25, sleep_h=23.5, weekend_lag_h=1.0, office_days=(3, 5), work_hours=(9, 17),
        dayparts=_dayparts(
            (0, 6, 1.0, "shopping:2.5 social:1 communication:1"),
            (6, 10, 2.5, "shopping:3 communication:2 social:1.5 news:1 browser:1"),
            (10, 18, 2.0, "shopping:3 communication:2 browser:2 social:1.5"),
            (18, 22, 2.8, "shopping:3.5 social:2 browser:1.5 music_video:1.5 communication:1"),
            (22, 24, 2.0, "shopping:3 social:2 music_video:1"),
        ),
        moving_mix=_mix("shopping:3 music_video:2 social:2 communication:2"),
        work_mix=_mix("communication:3 productivity:2 shopping:2 browser:1.5"),
        out_mix=_mix("shopping:4 communication:2 browser:1 social:1"),
        dwell_scale=_mix("shopping:1.2"),
        outings_weekday=0.8, outings_weekend=2.0,
        place_kinds=_mix("shop:4 mall:4 cafe:1 restaurant:1"),
        new_place_share=0.15, far_trip_share=0.03,
        preferred_apps=("com.amazon.mShop.android.shopping", "com.einnovation.temu",
                        "com.alibaba.aliexpresshd", "com.zzkko", "com.ebay.mobile",
                        "com.contextlogic.wish", "com.groupon", "fr.vinted"),
        shop_sessions_per_day=4.0, views_per_session=5.0, cart_per_view=0.3,
        purchase_per_cart=0.3, offer_shown_per_session=0.9, offer_accept=0.45,
        offer_dismiss=0.35, basket=22.0,
    ),
)  # fmt: skip

_BY_ID = {p.id: p for p in PERSONAS}


def persona(persona_id: str) -> Persona:
    """The archetype with this id.

    Raises:
        KeyError: unknown id; the message lists the known ones.
    """
    try:
        return _BY_ID[persona_id]
    except KeyError:
        raise KeyError(f"unknown persona {persona_id!r}; known: {', '.join(_BY_ID)}") from None


# fmt: off
_POOLS: dict[str, tuple[str, ...]] = {
    "social": (
        "com.instagram.android", "com.facebook.katana", "com.zhiliaoapp.musically",
        "com.snapchat.android", "com.twitter.android", "com.reddit.frontpage", "com.pinterest",
        "com.linkedin.android", "com.instagram.barcelona", "com.bereal.ft", "com.tumblr",
    ),
    "communication": (
        "com.whatsapp", "org.telegram.messenger", "com.facebook.orca", "com.google.android.gm",
        "com.microsoft.office.outlook", "com.discord", "com.google.android.apps.messaging",
        "com.samsung.android.messaging", "org.thoughtcrime.securesms", "com.viber.voip",
        "com.google.android.dialer",
    ),
    "shopping": (
        "com.amazon.mShop.android.shopping", "com.ebay.mobile", "com.alibaba.aliexpresshd",
        "com.einnovation.temu", "com.zzkko", "com.etsy.android", "com.asos.app", "com.hm.goe",
        "com.nike.omega", "com.groupon", "com.contextlogic.wish", "fr.vinted",
        "com.ubercab.eats", "com.dd.doordash", "com.deliveroo.orderapp", "com.instacart.client",
    ),
    "news": (
        "com.google.android.apps.magazines", "bbc.mobile.news.ww", "com.nytimes.android",
        "com.guardian", "com.cnn.mobile.android.phone", "flipboard.app",
        "com.thomsonreuters.reuters", "com.microsoft.amp.apps.bingnews",
    ),
    "games": (
        "com.king.candycrushsaga", "com.supercell.clashofclans", "com.supercell.clashroyale",
        "com.supercell.brawlstars", "com.tencent.ig", "com.roblox.client",
        "com.mojang.minecraftpe", "com.miHoYo.GenshinImpact", "com.dts.freefireth",
        "com.activision.callofduty.shooter", "com.mobile.legends", "com.epicgames.fortnite",
        "com.innersloth.spacemafia", "com.chess", "com.dreamgames.royalmatch",
    ),
    "music_video": (
        "com.google.android.youtube", "com.netflix.mediaclient", "com.disney.disneyplus",
        "tv.twitch.android.app", "com.amazon.avod.thirdpartyclient", "com.wbd.stream",
        "com.spotify.music", "deezer.android.app", "com.soundcloud.android",
        "com.google.android.apps.youtube.music", "com.crunchyroll.crunchyroid",
        "com.audible.application", "au.com.shiftyjelly.pocketcasts",
    ),
    "maps_travel": (
        "com.google.android.apps.maps", "com.waze", "com.citymapper.app.release", "com.ubercab",
        "com.booking", "com.airbnb.android", "com.tripadvisor.tripadvisor", "ee.mtakso.client",
        "com.tranzmate", "net.skyscanner.android.main",
    ),
    "productivity": (
        "com.google.android.calendar", "com.google.android.apps.docs", "com.microsoft.teams",
        "com.Slack", "us.zoom.videomeetings", "notion.id", "com.google.android.keep",
        "com.microsoft.office.word", "com.todoist", "com.dropbox.android", "com.adobe.reader",
        "com.google.android.apps.docs.editors.sheets",
    ),
    "browser": (
        "com.android.chrome", "org.mozilla.firefox", "com.sec.android.app.sbrowser",
        "com.brave.browser", "com.duckduckgo.mobile.android",
        "com.google.android.googlequicksearchbox", "com.opera.browser", "com.microsoft.emmx",
    ),
    "system": (
        "com.android.settings", "com.google.android.GoogleCamera", "com.sec.android.app.camera",
        "com.google.android.deskclock", "com.android.vending", "com.google.android.apps.nbu.files",
        "com.google.android.calculator",
    ),
    # Apps the SDK cannot place: banking, fitness, learning, weather.
    "other": (
        "com.revolut.revolut", "com.duolingo", "com.strava", "com.fitbit.FitbitMobile",
        "com.paypal.android.p2pmobile", "com.weather.Weather", "com.myfitnesspal.android",
        "com.headspace.android",
    ),
}
_LAUNCHERS = (
    "com.google.android.apps.nexuslauncher", "com.sec.android.app.launcher", "com.miui.home",
    "com.android.launcher3", "net.oneplus.launcher",
)
# fmt: on

_RESOLVER = AppCategoryResolver()

APP_POOLS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        category: tuple(a for a in app_ids if _RESOLVER.resolve(a) == category)
        for category, app_ids in _POOLS.items()
    }
)
"""Package ids per SDK category (and ``"other"``), each resolving to that category."""

LAUNCHERS: tuple[str, ...] = tuple(a for a in _LAUNCHERS if _RESOLVER.resolve(a) == "system")
"""Home screens: the foreground app between sessions, category ``system``."""

"""The app category resolver: built-in table, prefixes, keywords, registration, validation."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgepersona.sdk._categories import (
    _BUILTIN,
    _CACHE_LIMIT,
    CATEGORIES,
    AppCategoryResolver,
    _category_from_keywords,
)
from edgepersona.sdk.errors import InvalidSignalError

ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


@pytest.fixture
def resolver() -> AppCategoryResolver:
    return AppCategoryResolver()


def test_categories_are_the_documented_ids_in_order() -> None:
    assert CATEGORIES == (
        "social",
        "communication",
        "shopping",
        "news",
        "games",
        "music_video",
        "maps_travel",
        "productivity",
        "browser",
        "system",
        "other",
    )


@pytest.mark.parametrize(
    ("app_id", "category"),
    [
        ("com.instagram.android", "social"),
        ("com.zhiliaoapp.musically", "social"),
        ("com.ss.android.ugc.trill", "social"),
        ("com.snapchat.android", "social"),
        ("com.whatsapp", "communication"),
        ("org.thoughtcrime.securesms", "communication"),
        ("com.facebook.orca", "communication"),
        ("com.google.android.gm", "communication"),
        ("com.google.android.dialer", "communication"),
        ("com.amazon.mShop.android.shopping", "shopping"),
        ("com.einnovation.temu", "shopping"),
        ("com.zzkko", "shopping"),
        ("com.google.android.apps.magazines", "news"),
        ("bbc.mobile.news.ww", "news"),
        ("com.nytimes.android", "news"),
        ("com.king.candycrushsaga", "games"),
        ("com.tencent.ig", "games"),
        ("com.miHoYo.GenshinImpact", "games"),
        ("com.spotify.music", "music_video"),
        ("com.google.android.youtube", "music_video"),
        ("com.amazon.avod.thirdpartyclient", "music_video"),
        ("com.google.android.apps.maps", "maps_travel"),
        ("com.ubercab", "maps_travel"),
        ("ee.mtakso.client", "maps_travel"),
        ("com.google.android.apps.docs.editors.sheets", "productivity"),
        ("com.Slack", "productivity"),
        ("us.zoom.videomeetings", "productivity"),
        ("com.android.chrome", "browser"),
        ("com.sec.android.app.sbrowser", "browser"),
        ("com.microsoft.emmx", "browser"),
        ("com.android.settings", "system"),
        ("com.android.vending", "system"),
        ("com.google.android.apps.nexuslauncher", "system"),
    ],
)
def test_well_known_apps_resolve_to_their_category(
    resolver: AppCategoryResolver, app_id: str, category: str
) -> None:
    assert resolver.resolve(app_id) == category


def test_matching_ignores_case(resolver: AppCategoryResolver) -> None:
    assert resolver.resolve("COM.WHATSAPP") == "communication"
    assert resolver.resolve("com.slack") == "productivity"
    resolver.register("Com.Acme.Racer", "games")
    assert resolver.resolve("com.acme.racer") == "games"


def test_every_builtin_id_is_valid_and_resolves_to_its_category(
    resolver: AppCategoryResolver,
) -> None:
    assert set(_BUILTIN) == set(CATEGORIES) - {"other"}
    for category, app_ids in _BUILTIN.items():
        for app_id in app_ids:
            AppCategoryResolver().register(app_id, category)  # raises if the id is not valid
            assert resolver.resolve(app_id) == category, app_id


def test_builtin_ids_are_listed_once() -> None:
    app_ids = [app_id.lower() for app_ids in _BUILTIN.values() for app_id in app_ids]
    assert len(app_ids) == len(set(app_ids))


def test_keywords_never_contradict_the_builtin_table() -> None:
    for category, app_ids in _BUILTIN.items():
        for app_id in app_ids:
            assert _category_from_keywords(app_id.lower()) in (category, "other"), app_id


def test_builtin_prefix_covers_ids_below_it_on_a_dot_boundary_only(
    resolver: AppCategoryResolver,
) -> None:
    assert resolver.resolve("com.facebook.orca.beta") == "communication"
    assert resolver.resolve("com.supercell.squad") == "games"
    assert resolver.resolve("com.facebook.orcas") == "other"
    assert resolver.resolve("com.supercellar") == "other"


def test_registered_prefix_covers_ids_below_it_on_a_dot_boundary_only(
    resolver: AppCategoryResolver,
) -> None:
    resolver.register("com.acme", "productivity")
    assert resolver.resolve("com.acme") == "productivity"
    assert resolver.resolve("com.acme.notes") == "productivity"
    assert resolver.resolve("com.acme.notes.beta") == "productivity"
    assert resolver.resolve("com.acmecorp.notes") == "other"


def test_the_longest_prefix_wins_whoever_registered_it(resolver: AppCategoryResolver) -> None:
    resolver.register("com.acme", "productivity")
    resolver.register("com.acme.arcade", "games")
    resolver.register("com.google", "productivity")
    assert resolver.resolve("com.acme.arcade.pinball") == "games"
    assert resolver.resolve("com.acme.office.pinball") == "productivity"
    assert resolver.resolve("com.google.android.gms.ui") == "system"  # built-in is longer
    assert resolver.resolve("com.google.unknown") == "productivity"


def test_a_prefix_beats_the_keywords(resolver: AppCategoryResolver) -> None:
    resolver.register("com.acme", "productivity")
    assert resolver.resolve("com.acme.gamestudio") == "productivity"


@pytest.mark.parametrize(
    ("app_id", "category"),
    [
        ("com.example.puzzlegames", "games"),
        ("org.citynews.reader", "news"),
        ("com.example.shop", "shopping"),
        ("com.example.store.app", "shopping"),
        ("com.example.onlineshopping", "shopping"),
        ("fm.example.radio", "music_video"),
        ("tv.example.player", "music_video"),
        ("com.example.podcasts", "music_video"),
        ("com.example.maps", "maps_travel"),
        ("com.example.citytaxi", "maps_travel"),
        ("com.example.mytransitapp", "maps_travel"),
        ("com.example.fastbrowser", "browser"),
        ("com.example.securemail", "communication"),
        ("com.example.chat", "communication"),
        ("com.example.sms", "communication"),
        ("com.example.homelauncher", "system"),
        ("com.example.settings", "system"),
        ("com.example_news-reader", "news"),
    ],
)
def test_keywords_classify_unseen_ids(
    resolver: AppCategoryResolver, app_id: str, category: str
) -> None:
    assert resolver.resolve(app_id) == category


@pytest.mark.parametrize(
    "app_id",
    [
        "com.example.vending",
        "com.example.restore",
        "com.example.photoshop",
        "com.example.snapchatter",
        "com.example.musically",
        "com.example.videomeetings",
        "com.example.notes",
        "",
    ],
)
def test_words_that_only_look_like_keywords_give_other(
    resolver: AppCategoryResolver, app_id: str
) -> None:
    assert resolver.resolve(app_id) == "other"


def test_an_earlier_rule_wins_when_several_keywords_match(resolver: AppCategoryResolver) -> None:
    assert resolver.resolve("com.example.gamenews") == "games"
    assert resolver.resolve("com.example.newsradio.browser") == "browser"


def test_register_overrides_the_builtin_table_and_invalidates_the_cache(
    resolver: AppCategoryResolver,
) -> None:
    assert resolver.resolve("com.android.vending") == "system"
    resolver.register("com.android.vending", "shopping")
    assert resolver.resolve("com.android.vending") == "shopping"
    resolver.register("com.android.vending", "system")
    assert resolver.resolve("com.android.vending") == "system"


def test_register_invalidates_cached_prefix_and_keyword_answers(
    resolver: AppCategoryResolver,
) -> None:
    assert resolver.resolve("com.acme.newsroom") == "news"
    resolver.register("com.acme", "productivity")
    assert resolver.resolve("com.acme.newsroom") == "productivity"


def test_registrations_stay_in_their_own_resolver() -> None:
    first, second = AppCategoryResolver(), AppCategoryResolver()
    first.register("com.whatsapp", "social")
    assert first.resolve("com.whatsapp") == "social"
    assert second.resolve("com.whatsapp") == "communication"
    assert AppCategoryResolver().resolve("com.whatsapp") == "communication"


def test_extra_mapping_applies_at_construction() -> None:
    resolver = AppCategoryResolver(extra={"com.acme": "games", "com.whatsapp": "social"})
    assert resolver.resolve("com.acme.racer") == "games"
    assert resolver.resolve("com.whatsapp") == "social"
    assert resolver.resolve("org.telegram.messenger") == "communication"


@pytest.mark.parametrize("category", ["sport", "Social", "", None, 3])
def test_an_unknown_category_is_rejected_with_the_accepted_ones(
    resolver: AppCategoryResolver, category: object
) -> None:
    with pytest.raises(InvalidSignalError, match="music_video") as raised:
        resolver.register("com.acme", category)  # type: ignore[arg-type]
    assert raised.value.field == "category"
    assert isinstance(raised.value, ValueError)
    with pytest.raises(InvalidSignalError, match="social"):
        AppCategoryResolver(extra={"com.acme": category})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "app_id", ["", "a" * 256, "com.acme app", "com.acme/app", "com.äcme", "com.acme\n", 42, None]
)
def test_a_bad_app_id_is_rejected(resolver: AppCategoryResolver, app_id: object) -> None:
    with pytest.raises(InvalidSignalError) as raised:
        resolver.register(app_id, "games")  # type: ignore[arg-type]
    assert raised.value.field == "app"
    with pytest.raises(InvalidSignalError):
        AppCategoryResolver(extra={app_id: "games"})  # type: ignore[dict-item]


def test_a_rejected_registration_changes_nothing(resolver: AppCategoryResolver) -> None:
    with pytest.raises(InvalidSignalError):
        resolver.register("com.whatsapp", "chat")
    assert resolver.resolve("com.whatsapp") == "communication"


def test_the_longest_accepted_id_is_255_characters(resolver: AppCategoryResolver) -> None:
    longest = "a" * 255
    resolver.register(longest, "games")
    assert resolver.resolve(longest) == "games"


def test_the_cache_stays_bounded_and_correct(resolver: AppCategoryResolver) -> None:
    for number in range(_CACHE_LIMIT + 10):
        assert resolver.resolve(f"com.example.app{number}") == "other"
    assert len(resolver._cache) <= _CACHE_LIMIT
    assert resolver.resolve("com.whatsapp") == "communication"


def test_resolve_sees_the_last_registration_made_while_other_threads_resolve() -> None:
    resolver = AppCategoryResolver()
    done = threading.Event()
    seen: set[str] = set()

    def keep_resolving() -> None:
        while not done.is_set():
            seen.add(resolver.resolve("com.acme.app"))

    readers = [threading.Thread(target=keep_resolving) for _ in range(4)]
    for reader in readers:
        reader.start()
    for number in range(300):
        resolver.register("com.acme.app", ("games", "news")[number % 2])
    resolver.register("com.acme.app", "shopping")
    done.set()
    for reader in readers:
        reader.join()
    assert resolver.resolve("com.acme.app") == "shopping"
    assert seen <= {"other", "games", "news", "shopping"}


@given(st.text())
def test_resolve_gives_a_category_for_any_text_and_always_the_same_one(text: str) -> None:
    resolver = AppCategoryResolver()
    first = resolver.resolve(text)
    assert first in CATEGORIES
    assert resolver.resolve(text) == first
    assert AppCategoryResolver().resolve(text) == first


@given(st.text(alphabet=ID_CHARS, min_size=1, max_size=60))
def test_resolve_ignores_the_case_of_a_valid_id(app_id: str) -> None:
    resolver = AppCategoryResolver()
    assert resolver.resolve(app_id.upper()) == resolver.resolve(app_id.lower())
    assert resolver.resolve(app_id.swapcase()) == resolver.resolve(app_id)

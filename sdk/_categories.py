"""Coarse app categories for Android package ids, resolved on the device.

The persona models learn from *what kind* of app is in the foreground, not from which app:
a category generalises across apps and countries and says far less about the person than a
package id. So every ``track_app`` turns the package id into one of :data:`CATEGORIES`, here,
without a network call.

An id is resolved by, in order:

1. an exact match, case-insensitive (ids the host app registered win over the built-in table);
2. the longest registered or built-in *prefix* ending at a dot, so ``com.supercell`` covers
   ``com.supercell.brawlstars`` but not ``com.supercellar``;
3. keywords in the id's tokens (split at ``.``, ``_`` and ``-``), first rule that matches:

   =============  ==========================================  ============================
   category       whole token equal to                        anywhere inside a token
   =============  ==========================================  ============================
   system         settings, systemui                          launcher
   browser                                                    browser
   communication  chat, sms, mms, dialer, contacts, talk,     mail, messenger, messaging,
                  voip                                        messages
   games                                                      game
   news                                                       news
   music_video    music, video(s), tv, radio, podcast(s)
   maps_travel    map(s), nav, navigation                     taxi, transit, travel
   shopping       shop, store                                 shopping
   =============  ==========================================  ============================

   Short or ambiguous words must be a whole token: inside a token "chat" would make
   Snapchat a messenger, "music" TikTok's ``musically``, "video" Zoom's ``videomeetings``,
   "store" Google's ``restore`` and "shop" ``photoshop``;
4. otherwise ``"other"``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

from ._validate import app_id as _checked_app_id
from .errors import InvalidSignalError

__all__ = ["CATEGORIES", "AppCategoryResolver"]

CATEGORIES: tuple[str, ...] = (
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

# Every entry also covers the ids below it (``com.whatsapp`` covers ``com.whatsapp.w4b``), so a
# publisher prefix such as ``com.supercell`` stands for all of its apps. Comments name the apps
# whose package id does not say what they are.
# fmt: off
_BUILTIN: dict[str, tuple[str, ...]] = {
    "social": (
        "com.instagram.android", "com.instagram.lite", "com.instagram.barcelona",  # Threads
        "com.facebook.katana", "com.facebook.lite",  # Facebook
        "com.zhiliaoapp.musically", "com.ss.android.ugc.trill",  # TikTok
        "com.ss.android.ugc.aweme", "com.smile.gifmaker",  # Douyin, Kuaishou
        "com.xingin.xhs",  # RedNote
        "com.snapchat.android", "com.twitter.android", "com.reddit.frontpage",
        "com.linkedin.android", "com.pinterest", "com.tumblr", "com.sina.weibo",
        "com.vkontakte.android", "com.ninegag.android.app", "com.quora.android",
        "com.zhihu.android", "com.naver.band", "com.nextdoor", "com.imgur.mobile",
        "com.bereal.ft", "org.joinmastodon.android", "xyz.blueskyweb.app",
        "com.tinder", "com.bumble.app", "co.hinge.app", "com.badoo.mobile",
        "com.grindrapp.android", "com.okcupid.okcupid",
    ),
    "communication": (
        "com.whatsapp", "com.whatsapp.w4b", "org.telegram.messenger",
        "org.thunderdog.challegram",  # Telegram X
        "org.thoughtcrime.securesms",  # Signal
        "com.facebook.orca", "com.facebook.mlite",  # Messenger
        "com.google.android.gm", "com.google.android.gm.lite",  # Gmail
        "com.microsoft.office.outlook", "com.yahoo.mobile.client.android.mail",
        "ch.protonmail.android", "me.bluemail.mail", "com.fsck.k9", "com.readdle.spark",
        "com.samsung.android.email.provider",
        "com.viber.voip", "com.skype.raider", "com.discord", "im.vector.app",  # Element
        "com.tencent.mm", "com.tencent.mobileqq", "jp.naver.line.android",  # WeChat, QQ
        "com.linecorp.linelite", "com.kakao.talk", "com.zing.zalo", "com.imo.android.imoim",
        "com.wire", "com.truecaller", "com.textra",
        "com.google.android.apps.messaging", "com.google.android.apps.dynamite",  # Google Chat
        "com.google.android.apps.tachyon",  # Google Meet (was Duo)
        "com.google.android.apps.googlevoice", "com.google.android.talk",
        "com.google.android.dialer", "com.google.android.contacts",
        "com.android.dialer", "com.android.contacts", "com.android.mms", "com.android.messaging",
        "com.samsung.android.messaging", "com.samsung.android.dialer",
        "com.samsung.android.app.contacts", "com.samsung.android.incallui",
    ),
    "shopping": (
        "com.amazon.mShop.android.shopping", "in.amazon.mShop.android.shopping",
        "com.ebay.mobile", "com.ebay.kleinanzeigen", "com.alibaba.aliexpresshd",
        "com.einnovation.temu", "com.zzkko",  # Shein
        "de.zalando.mobile", "com.etsy.android", "com.walmart.android", "com.target.ui",
        "com.costco.app.android", "com.contextlogic.wish", "com.mercadolibre",
        "com.shopee", "com.lazada.android", "com.flipkart.android",
        "com.taobao.taobao", "com.jingdong.app.mall", "com.xunmeng.pinduoduo",  # JD, Pinduoduo
        "com.coupang.mobile", "com.kouzoh.mercari", "jp.co.rakuten.android",
        "fr.vinted", "com.asos.app", "com.hm.goe", "com.nike.omega", "com.groupon",
        "com.ubercab.eats", "com.dd.doordash", "com.grubhub.android", "com.instacart.client",
        "com.deliveroo.orderapp", "com.global.foodpanda.android",
    ),
    "news": (
        "com.google.android.apps.magazines",  # Google News
        "bbc.mobile.news.ww", "bbc.mobile.news.uk", "com.nytimes.android",
        "com.cnn.mobile.android.phone", "com.guardian", "com.foxnews.android",
        "com.washingtonpost.android", "wsj.reader_sp", "com.ft.news",
        "com.thomsonreuters.reuters", "mnn.Android",  # AP News
        "de.spiegel.android.app.spon", "flipboard.app", "com.devhd.feedly",
        "com.particlenews.newsbreak", "jp.gocro.smartnews.android",
        "com.microsoft.amp.apps.bingnews", "com.opera.app.news", "com.ss.android.article.news",
    ),
    "games": (
        "com.king", "com.king.candycrushsaga", "com.king.candycrushsodasaga",
        "com.supercell", "com.supercell.clashofclans", "com.supercell.clashroyale",
        "com.supercell.brawlstars", "com.supercell.hayday",
        "com.tencent.ig", "com.pubg.imobile",  # PUBG Mobile, BGMI
        "com.roblox.client", "com.mojang.minecraftpe", "com.miHoYo.GenshinImpact",
        "com.HoYoverse.hkrpgoversea",  # Honkai: Star Rail
        "com.kiloo.subwaysurf", "com.innersloth.spacemafia",  # Among Us
        "com.dts.freefireth", "com.dts.freefiremax",  # Free Fire
        "com.activision.callofduty.shooter", "com.mobile.legends", "com.imangi.templerun2",
        "com.nianticlabs.pokemongo", "com.ea.game.pvzfree_row", "com.ea.gp.fifamobile",
        "com.rovio", "com.gameloft", "com.outfit7", "com.miniclip", "com.playrix", "com.zynga",
        "com.moonactive.coinmaster", "com.fingersoft.hillclimb", "com.dreamgames.royalmatch",
        "com.igg.android.lordsmobile", "com.halfbrick.fruitninjafree", "com.ludo.king",
        "com.mobilityware.solitaire", "com.chess", "com.epicgames.fortnite",
        "com.blizzard.wtcg.hearthstone", "com.valvesoftware.android.steam.community",
        "com.microsoft.xboxone.smartglass", "com.scee.psxandroid",  # Xbox, PlayStation
        "com.google.android.play.games",
    ),
    "music_video": (
        "com.google.android.youtube", "com.google.android.apps.youtube.music",
        "com.google.android.apps.youtube.kids", "com.google.android.videos",  # Google TV
        "com.netflix.mediaclient", "com.disney.disneyplus", "tv.twitch.android.app",
        "com.amazon.avod.thirdpartyclient", "com.amazon.mp3",  # Prime Video, Amazon Music
        "com.hbo.hbonow", "com.wbd.stream", "com.hulu.plus", "bbc.iplayer.android",  # Max
        "com.crunchyroll.crunchyroid", "com.dazn", "tv.pluto.android", "com.tubitv",
        "tv.danmaku.bili",  # Bilibili
        "com.vimeo.android.videoapp", "com.plexapp.android", "org.videolan.vlc",
        "com.mxtech.videoplayer.ad",  # MX Player
        "com.spotify.music", "com.spotify.lite", "com.apple.android.music", "deezer.android.app",
        "com.soundcloud.android", "com.pandora.android", "com.aspiro.tidal",  # Tidal
        "com.shazam.android", "com.sec.android.app.music", "com.iloen.melon",
        "com.netease.cloudmusic", "com.tencent.qqmusic", "com.clearchannel.iheartradio.controller",
        "tunein.player", "com.audible.application", "com.google.android.apps.podcasts",
        "au.com.shiftyjelly.pocketcasts", "fm.castbox.audiobook.radio.podcast",
    ),
    "maps_travel": (
        "com.google.android.apps.maps", "com.google.android.apps.mapslite", "com.google.earth",
        "com.waze", "com.here.app.maps", "com.sygic.aura", "net.osmand", "net.osmand.plus",
        "app.organicmaps", "com.mapswithme.maps.pro",  # Maps.me
        "com.baidu.BaiduMap", "net.daum.android.map",  # KakaoMap
        "com.citymapper.app.release", "com.thetransitapp.droid", "com.tranzmate",  # Moovit
        "de.hafas.android.db",  # DB Navigator
        "com.ubercab", "me.lyft.android", "ee.mtakso.client",  # Bolt
        "taxi.android.client",  # FREENOW
        "com.grabtaxi.passenger", "com.gojek.app", "com.olacabs.customer",
        "com.comuto",  # BlaBlaCar
        "com.booking", "com.airbnb.android", "com.expedia.bookings", "com.hcom.android",
        "com.tripadvisor.tripadvisor", "com.trivago", "com.kayak.android",
        "net.skyscanner.android.main", "com.hopper.mountainview.play", "com.agoda.mobile.consumer",
        "com.ryanair.cheapflights", "com.flightradar24free",
        "com.flightaware.android.liveflighttracker",
    ),
    "productivity": (
        "com.google.android.apps.docs",  # Drive
        "com.google.android.apps.docs.editors.docs", "com.google.android.apps.docs.editors.sheets",
        "com.google.android.apps.docs.editors.slides", "com.google.android.calendar",
        "com.google.android.keep", "com.google.android.apps.tasks",
        "com.google.android.apps.translate", "com.google.android.apps.authenticator2",
        "com.microsoft.office.officehubrow",  # Microsoft 365
        "com.microsoft.office.word", "com.microsoft.office.excel",
        "com.microsoft.office.powerpoint", "com.microsoft.office.onenote",
        "com.microsoft.skydrive",  # OneDrive
        "com.microsoft.teams", "com.microsoft.todos", "com.Slack", "us.zoom.videomeetings",
        "com.cisco.webex.meetings", "notion.id", "com.trello", "com.todoist", "com.evernote",
        "com.asana.app", "md.obsidian", "com.ticktick.task", "com.anydo",
        "com.dropbox.android", "com.box.android", "com.adobe.reader", "com.canva.editor",
        "com.intsig.camscanner", "com.ss.android.lark",  # Lark
        "com.alibaba.android.rimet",  # DingTalk
        "com.tencent.wework", "com.samsung.android.app.notes", "com.samsung.android.calendar",
        "com.android.calendar",
    ),
    "browser": (
        "com.android.chrome", "com.chrome.beta", "com.chrome.dev", "com.chrome.canary",
        "org.mozilla.firefox", "org.mozilla.firefox_beta", "org.mozilla.fenix",
        "org.mozilla.focus", "com.sec.android.app.sbrowser",  # Samsung Internet
        "com.opera.browser", "com.opera.mini.native", "com.opera.gx", "com.brave.browser",
        "com.duckduckgo.mobile.android", "com.microsoft.emmx",  # Edge
        "com.vivaldi.browser", "com.kiwibrowser.browser", "com.UCMobile.intl",  # UC Browser
        "com.yandex.browser", "com.mi.globalbrowser", "com.huawei.browser", "com.ecosia.android",
        "org.torproject.torbrowser", "com.android.browser",
        "com.google.android.googlequicksearchbox",  # the Google search app
        "com.baidu.searchbox", "com.tencent.mtt",  # QQ Browser
    ),
    "system": (
        "com.android.settings", "com.android.systemui", "com.android.vending",  # Play Store
        "com.google.android.gms", "com.google.android.apps.nexuslauncher",
        "com.sec.android.app.launcher", "com.android.launcher3", "com.miui.home",
        "com.huawei.android.launcher", "net.oneplus.launcher",
        "com.teslacoilsw.launcher",  # Nova
        "com.microsoft.launcher", "com.google.android.packageinstaller",
        "com.android.packageinstaller", "com.google.android.permissioncontroller",
        "com.android.permissioncontroller", "com.google.android.setupwizard",
        "com.google.android.inputmethod.latin",  # Gboard
        "com.google.android.apps.googleassistant", "com.google.android.apps.wellbeing",
        "com.google.android.apps.nbu.files", "com.android.documentsui",
        "com.google.android.deskclock", "com.google.android.calculator",
        "com.google.android.GoogleCamera", "com.android.camera2", "com.sec.android.app.camera",
        "com.sec.android.app.myfiles", "com.sec.android.gallery3d",
        "com.sec.android.app.clockpackage", "com.sec.android.app.popupcalculator",
        "com.sec.android.app.samsungapps",  # Galaxy Store
        "com.huawei.appmarket", "com.miui.securitycenter",
    ),
}
# fmt: on

_BUILTIN_BY_ID: dict[str, str] = {
    app_id.lower(): category for category, app_ids in _BUILTIN.items() for app_id in app_ids
}

# (category, whole tokens, substrings of a token); the first matching rule wins.
_KEYWORD_RULES: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    ("system", frozenset({"settings", "systemui"}), ("launcher",)),
    ("browser", frozenset(), ("browser",)),
    (
        "communication",
        frozenset({"chat", "sms", "mms", "dialer", "contacts", "talk", "voip"}),
        ("mail", "messenger", "messaging", "messages"),
    ),
    ("games", frozenset(), ("game",)),
    ("news", frozenset(), ("news",)),
    (
        "music_video",
        frozenset({"music", "video", "videos", "tv", "radio", "podcast", "podcasts"}),
        (),
    ),
    ("maps_travel", frozenset({"map", "maps", "nav", "navigation"}), ("taxi", "transit", "travel")),
    ("shopping", frozenset({"shop", "store"}), ("shopping",)),
)
_TOKEN_SEPARATORS = re.compile(r"[._-]")

# resolve() accepts any str; past this many distinct ids the cache starts again rather than grow.
_CACHE_LIMIT = 4096


def _category_from_keywords(key: str) -> str:
    """The keyword rule for a lowercased id (step 3 of the module docstring), else "other"."""
    tokens = _TOKEN_SEPARATORS.split(key)
    for category, words, fragments in _KEYWORD_RULES:
        for token in tokens:
            if token in words or any(fragment in token for fragment in fragments):
                return category
    return "other"


def _classify(table: Mapping[str, str], app_id: str) -> str:
    key = app_id.lower()
    end = len(key)
    while end > 0:  # the whole id first, then each prefix that ends before a dot
        category = table.get(key[:end])
        if category is not None:
            return category
        end = key.rfind(".", 0, end)
    return _category_from_keywords(key)


def _checked_entry(app_id: object, category: object) -> str:
    """The lowercased table key for a valid ``(app_id, category)``; raises if either is bad."""
    key = _checked_app_id(app_id).lower()
    if category not in CATEGORIES:
        raise InvalidSignalError(
            "category", f"{category!r:.40} is not a category; use one of {', '.join(CATEGORIES)}"
        )
    return key


class AppCategoryResolver:
    """Maps Android package ids to one of :data:`CATEGORIES`; see the module docstring.

    ``resolve`` may run on many threads while another calls ``register``.

    Args:
        extra: ``{package id or prefix: category}`` applied after the built-in table, like
            calls to :meth:`register`.

    Raises:
        InvalidSignalError: an ``extra`` entry has a bad package id (field ``"app"``) or a
            category outside :data:`CATEGORIES` (field ``"category"``).
    """

    def __init__(self, extra: Mapping[str, str] | None = None) -> None:
        table = dict(_BUILTIN_BY_ID)
        for app_id, category in (extra or {}).items():
            table[_checked_entry(app_id, category)] = category
        self._table = table
        self._cache: dict[str, str] = {}
        self._register_lock = threading.Lock()

    def resolve(self, app_id: str) -> str:
        """The category of ``app_id`` (``"other"`` when nothing matches).

        Expects an id the caller has validated, but returns a category for any str. A repeated
        id costs one dict lookup.
        """
        # Read the cache before the table: register() swaps the table first, so an answer
        # computed from the old table can only land in the old cache, which is dropped.
        cache = self._cache
        category = cache.get(app_id)
        if category is None:
            category = _classify(self._table, app_id)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[app_id] = category
        return category

    def register(self, app_id: str, category: str) -> None:
        """Map ``app_id`` and every id below it (``app_id`` + ``"."`` + more) to ``category``.

        Overrides the built-in table and earlier registrations of the same id.

        Raises:
            InvalidSignalError: ``app_id`` is not 1 to 255 letters, digits, ``.``, ``_`` or
                ``-`` (field ``"app"``), or ``category`` is not in :data:`CATEGORIES`.
        """
        key = _checked_entry(app_id, category)
        with self._register_lock:
            # A new table and cache instead of edits, so a concurrent resolve() never sees
            # a dict change under it.
            table = dict(self._table)
            table[key] = category
            self._table = table
            self._cache = {}

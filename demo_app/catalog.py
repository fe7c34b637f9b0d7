"""What the demo shop shows: its cards, shortcuts, offers and the words of its consent screen.

This is the host app's own content. The SDK only picks among ids (``decide()`` returns the
playbook's card and shortcut ids and ranks the offer ids the app passes); an id this catalog
does not know, say from a newer model bundle, still gets a sensible card.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "OFFERS",
    "PERSONA_COLOURS",
    "PURPOSES",
    "Card",
    "Offer",
    "Purpose",
    "Shortcut",
    "card",
    "offer",
    "persona_colour",
    "persona_name",
    "shortcut",
    "words",
]


class Card(NamedTuple):
    id: str
    icon: str  # a glyph of DejaVu Sans (shipped with Kivy), so no image files are needed
    title: str
    body: str


class Shortcut(NamedTuple):
    id: str
    icon: str
    label: str


class Offer(NamedTuple):
    id: str
    icon: str
    title: str
    detail: str
    price: str


class Purpose(NamedTuple):
    id: str
    icon: str
    title: str
    uses: str  # what it takes, in plain words
    never: str  # what it never does


_CARDS = {
    c.id: c
    for c in (
        Card("traffic", "⇄", "Your commute", "Line 4 is running normally. About 25 min to work."),
        Card("podcasts", "♫", "Podcasts for the ride", "Three new episodes since yesterday."),
        Card("news", "✎", "Morning briefing", "Five stories picked from the sections you read."),
        Card("offers", "★", "Offers for you", "Deals ranked for you, on this phone."),
        Card("price_drops", "⬇", "Price drops", "4 items on your watch list are cheaper today."),
        Card("cart", "⛁", "Your cart", "2 items waiting. Free delivery over 30 €."),
        Card("for_you", "✦", "Picked for you", "New arrivals in the categories you browse most."),
        Card("watch_tonight", "▶", "Watch tonight", "A new season just landed. 45 min episodes."),
        Card("music", "♪", "Music", "Your evening mix is ready."),
        Card("food_delivery", "☕", "Dinner, delivered", "Your usual places deliver in 30-40 min."),
        Card("game_deals", "♞", "Game deals", "Weekend sale on 12 titles you might like."),
        Card("streams", "◉", "Live now", "Three streamers you follow are live."),
        Card("calendar", "◷", "Today", "Next: team sync at 10:30, lunch at 12:30."),
        Card("lunch_offers", "☕", "Lunch nearby", "Three places near work have a lunch menu."),
        Card("nearby", "⚲", "Around you", "Markets, parks and cafés open this weekend."),
        Card("events", "✿", "Events", "Open-air concert on Saturday, 4 km away."),
        Card("maps", "➚", "Maps", "Saved places and routes, available offline."),
    )
}

_SHORTCUTS = {
    s.id: s
    for s in (
        Shortcut("maps", "➚", "Maps"),
        Shortcut("tickets", "✈", "Tickets"),
        Shortcut("cart", "⛁", "Cart"),
        Shortcut("orders", "☰", "Orders"),
        Shortcut("tv", "▶", "TV"),
        Shortcut("delivery", "☕", "Delivery"),
        Shortcut("games", "♞", "Games"),
        Shortcut("chat", "✉", "Chat"),
        Shortcut("calendar", "◷", "Calendar"),
        Shortcut("lunch", "☕", "Lunch"),
        Shortcut("search", "⚲", "Search"),
    )
}

OFFERS: dict[str, Offer] = {
    o.id: o
    for o in (
        Offer("coffee_to_go", "☕", "Coffee to go", "Any size, at 40 partner cafés.", "-30%"),
        Offer("flash_sale", "⚡", "Flash sale", "Today only: electronics and home.", "up to -50%"),
        Offer("food_delivery", "☕", "Free delivery", "On your next dinner order.", "0 € fee"),
        Offer("game_bundle", "♞", "Game bundle", "Five indie hits, one price.", "14.99 €"),
        Offer("lunch_deal", "✿", "Lunch deal", "Main, drink and dessert nearby.", "9.90 €"),
        Offer("streaming_trial", "▶", "Streaming trial", "Two months of films and series.", "free"),
        Offer("transit_pass", "⇄", "Transit pass", "Monthly pass, auto-renew off.", "-15%"),
        Offer(
            "weekend_trip", "✈", "Weekend trip", "Two nights by the sea, train included.", "-20%"
        ),
    )
}

PURPOSES: tuple[Purpose, ...] = (
    Purpose(
        "personalization",
        "✦",
        "Personalise this app",
        "Which apps and screens you use and when, to fit the home screen and offers to you.",
        "Never leaves this phone.",
    ),
    Purpose(
        "location",
        "⚲",
        "Use my location",
        "Where you spend time, so the app knows home, work and when you are on the move.",
        "Places are worked out on this phone; coordinates are never sent.",
    ),
    Purpose(
        "sync",
        "⇅",
        "Help improve the model",
        "Once a week, a small summary with random noise added, to train a better model.",
        "No locations, app names or anything that identifies you.",
    ),
)

# The personas the playbook was written for; a newer model's names come with its estimate.
_PERSONA_NAMES = {
    "commuter": "Commuting professional",
    "homebody_streamer": "Homebody streamer",
    "night_owl_gamer": "Night-owl gamer",
    "weekend_explorer": "Weekend explorer",
    "deal_hunter": "Deal hunter",
}
PERSONA_COLOURS: dict[str, str] = {
    "commuter": "#4F46E5",
    "homebody_streamer": "#DB2777",
    "night_owl_gamer": "#7C3AED",
    "weekend_explorer": "#059669",
    "deal_hunter": "#D97706",
}
_SPARE_COLOURS = ("#0284C7", "#DC2626", "#65A30D", "#9333EA", "#0D9488")


def card(card_id: str) -> Card:
    return _CARDS.get(card_id) or Card(card_id, "✦", words(card_id), "")


def shortcut(shortcut_id: str) -> Shortcut:
    return _SHORTCUTS.get(shortcut_id) or Shortcut(shortcut_id, "✦", words(shortcut_id))


def offer(offer_id: str) -> Offer:
    return OFFERS.get(offer_id) or Offer(offer_id, "★", words(offer_id), "", "")


def persona_name(persona_id: str) -> str:
    return _PERSONA_NAMES.get(persona_id) or words(persona_id)


def persona_colour(persona_id: str) -> str:
    """A stable colour per persona, also for personas a newer model brings."""
    if persona_id in PERSONA_COLOURS:
        return PERSONA_COLOURS[persona_id]
    return _SPARE_COLOURS[sum(map(ord, persona_id)) % len(_SPARE_COLOURS)]


def words(identifier: str) -> str:
    return identifier.replace("_", " ").capitalize()

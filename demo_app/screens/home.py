"""Home: cards, shortcuts and theme as ``decide("home")`` chose them, and why."""

from __future__ import annotations

from kivy.app import App
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from .. import views
from ..catalog import Card, Offer, Shortcut

__all__ = ["HomeCard", "HomeScreen", "OfferLine", "ShortcutButton"]


class HomeCard(BoxLayout):
    card_id = StringProperty("")
    icon = StringProperty("")
    heading = StringProperty("")
    body = StringProperty("")


class OfferLine(ButtonBehavior, BoxLayout):
    """An offer inside the home screen's "offers" card; opens the Offers screen."""

    offer_id = StringProperty("")
    icon = StringProperty("")
    heading = StringProperty("")
    price = StringProperty("")


class ShortcutButton(ButtonBehavior, BoxLayout):
    shortcut_id = StringProperty("")
    icon = StringProperty("")
    text = StringProperty("")


class HomeScreen(Screen):
    persona_text = StringProperty("")
    reasons = StringProperty("")
    show_reasons = BooleanProperty(False)
    variant = StringProperty("")

    def refresh(self) -> None:
        app = App.get_running_app()
        view = views.home_view(app.session.decide("home"))
        app.use_theme(view.theme)
        app.heading = view.greeting
        self.variant = view.variant
        estimate = app.session.persona()
        if view.personalized and estimate is not None:
            self.persona_text = f"{estimate.name} · {estimate.probabilities[estimate.id]:.0%}"
        else:
            self.persona_text = "Not personalised"
        self.reasons = "\n".join(f"•  {reason}" for reason in view.reasons)
        self._fill_shortcuts(view.shortcuts)
        self._fill_cards(view.cards, view.top_offers)

    def _fill_shortcuts(self, shortcuts: tuple[Shortcut, ...]) -> None:
        row = self.ids.shortcuts
        row.clear_widgets()
        for shortcut in shortcuts:
            row.add_widget(
                ShortcutButton(shortcut_id=shortcut.id, icon=shortcut.icon, text=shortcut.label)
            )

    def _fill_cards(self, cards: tuple[Card, ...], offers: tuple[Offer, ...]) -> None:
        stack = self.ids.cards
        stack.clear_widgets()
        for card in cards:
            widget = HomeCard(card_id=card.id, icon=card.icon, heading=card.title, body=card.body)
            if card.id == "offers":
                for offer in offers:
                    widget.ids.extra.add_widget(
                        OfferLine(
                            offer_id=offer.id,
                            icon=offer.icon,
                            heading=offer.title,
                            price=offer.price,
                        )
                    )
            stack.add_widget(widget)

    def card_ids(self) -> list[str]:
        """The cards in the order shown, top first."""
        return [card.card_id for card in reversed(self.ids.cards.children)]

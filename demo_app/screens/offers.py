"""Offers: ranked by ``decide("offers")``; accepting or dismissing one feeds ``feedback()``."""

from __future__ import annotations

from kivy.app import App
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from .. import views
from ..catalog import OFFERS

__all__ = ["OfferCard", "OffersScreen"]


class OfferCard(BoxLayout):
    offer_id = StringProperty("")
    icon = StringProperty("")
    heading = StringProperty("")
    detail = StringProperty("")
    price = StringProperty("")
    rank = NumericProperty(0)
    personalized = BooleanProperty(True)
    outcome = StringProperty("")  # "", "accepted" or "dismissed"


class OffersScreen(Screen):
    decision = ObjectProperty(None, allownone=True)
    ranking = StringProperty("")
    held_back = StringProperty("")

    def refresh(self) -> None:
        app = App.get_running_app()
        self.decision = decision = app.session.decide("offers")
        app.use_theme(str(decision.layout.get("theme", "light")))
        app.heading = "Offers for you"
        stack = self.ids.offers
        stack.clear_widgets()
        for item in views.offer_items(decision):
            offer = item.offer
            stack.add_widget(
                OfferCard(
                    offer_id=offer.id,
                    icon=offer.icon,
                    heading=offer.title,
                    detail=offer.detail,
                    price=offer.price,
                    rank=item.rank,
                    personalized=decision.personalized,
                )
            )
        shown = len(decision.offers)
        self.ranking = (
            f"{shown} of {len(OFFERS)} offers fit this moment, best for you first."
            if decision.personalized
            else "Not personalised: offers in the shop's own order."
        )
        self.held_back = "\n".join(f"•  {line}" for line in views.hidden_offers(decision))

    def answer(self, card: OfferCard, outcome: str) -> None:
        """The user accepted or dismissed an offer: tell the SDK, show it on the card."""
        app = App.get_running_app()
        if app.session.feedback(self.decision, card.offer_id, outcome):
            card.outcome = outcome
            app.notify(f"{card.heading}: {'added' if outcome == 'accepted' else 'hidden'}")
        else:
            app.notify("Turn on personalisation in the Privacy centre to teach the ranking.")

    def offer_ids(self) -> list[str]:
        return [card.offer_id for card in reversed(self.ids.offers.children)]

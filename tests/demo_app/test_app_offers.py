"""Offers: ranked by decide(); accepting or dismissing one feeds feedback()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .ui import go, jump, start


@pytest.fixture(scope="module")
def driver(start_app: Callable[..., Any]) -> Any:
    started = start_app()
    start(started)
    jump(started, 12)
    return started


def cards(offers: Any) -> list[Any]:
    return list(reversed(offers.ids.offers.children))


def test_offers_are_listed_in_the_decisions_order(driver: Any, shot: Any) -> None:
    offers = go(driver, "offers")
    decision = offers.decision
    assert decision.personalized and decision.surface == "offers"
    assert offers.offer_ids() == list(decision.offers)
    assert "lunch_deal" in decision.offers  # it is midday
    assert [c.rank for c in cards(offers)] == list(range(1, len(decision.offers) + 1))
    assert offers.ranking.startswith(f"{len(decision.offers)} of 8 offers fit this moment")
    held_back = offers.held_back.splitlines()
    assert len(held_back) == 8 - len(decision.offers)
    assert "•  Not offering Free delivery now: only when dinner at home" in held_back
    shot(driver)


def test_accept_and_dismiss_are_fed_back_to_the_sdk(driver: Any, shot: Any) -> None:
    offers = go(driver, "offers")
    first, second = cards(offers)[:2]
    driver.tap(first.ids.accept)
    driver.tap(second.ids.dismiss)
    assert (first.outcome, second.outcome) == ("accepted", "dismissed")
    assert first.ids.outcome.text.endswith("Added to your basket")
    stored = driver.app.session.sdk.export()["feedback"]
    assert [(f["decision_id"], f["offer_id"], f["outcome"]) for f in stored] == [
        (offers.decision.id, first.offer_id, "accepted"),
        (offers.decision.id, second.offer_id, "dismissed"),
    ]
    offers.children[0].scroll_y = 1
    shot(driver)


def test_without_personalisation_answers_are_not_kept(driver: Any, shot: Any) -> None:
    driver.app.set_purpose("personalization", False)  # what the privacy switch confirms
    offers = go(driver, "offers")
    assert not offers.decision.personalized
    assert offers.ranking == "Not personalised: offers in the shop's own order."
    first = cards(offers)[0]
    assert first.ids.words.children[-1].text == "OFFER"  # no "best for you" without a persona
    driver.tap(first.ids.accept)
    assert first.outcome == ""
    assert driver.app.message.startswith("Turn on personalisation")
    sdk = driver.app.session.sdk
    assert sdk.export()["feedback"] == []  # revoking deleted the earlier answers too
    assert sdk.stats()["dropped"]["feedback.no_consent"] == 1
    shot(driver)

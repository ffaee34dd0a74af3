"""The pages' behaviour sentence is the admin layer's, word for word in English (with
numbers as stored), and reads in French."""

from __future__ import annotations

import pytest

from agi import admin
from agi.admin import Actor, DeviceChanges, ExtensionChanges, ForwardingChanges
from agi.config import Config
from agi.store import AdminStore
from agi.web.pages import i18n, render, sentence

ACTOR = Actor("cli:test")


def _setups(store: AdminStore, config: Config) -> list:
    def forward_company_keypress() -> None:
        admin.set_forwarding(store, config, "1001", ForwardingChanges(
            enabled=True, target="0612345678", caller_id="company", require_keypress=True),
            ACTOR)

    def forward_fallback() -> None:
        admin.set_forwarding(store, config, "1001", ForwardingChanges(
            enabled=True, target="0612345678", caller_id="original-fallback"), ACTOR)

    def externals() -> None:
        admin.put_device(store, config, "1001", "0698765432", DeviceChanges(
            require_keypress=True, delay=5, ring=20), ACTOR)

    def on_noanswer_busy() -> None:
        admin.set_forwarding(store, config, "1001", ForwardingChanges(
            enabled=True, target="0612345678", when=("busy", "noanswer"), after=15), ACTOR)

    def hop() -> None:
        admin.update_extension(store, config, "1002", ExtensionChanges(did="0140000002"),
                               ACTOR)
        admin.set_forwarding(store, config, "1001", ForwardingChanges(
            enabled=True, target="0140000002"), ACTOR)

    def no_devices() -> None:
        admin.update_extension(store, config, "1001", ExtensionChanges(devices=[]), ACTOR)

    return [lambda: None, forward_company_keypress, forward_fallback, externals,
            on_noanswer_busy, hop, no_devices]


@pytest.mark.parametrize("case", range(7))
def test_english_is_the_admin_layers_sentence(store, web_config, extensions, case):
    _setups(store, web_config)[case]()
    view = admin.get_extension(store, web_config, "1001")
    view, route = sentence.view_and_route(store, web_config, "1001", view)
    assert sentence.behaviour(route, i18n.translator("en"), lambda n: n) == view.behaviour


def test_french_with_national_numbers(store, web_config, extensions):
    _setups(store, web_config)[1]()
    view = admin.get_extension(store, web_config, "1001")
    _, route = sentence.view_and_route(store, web_config, "1001", view)
    text = sentence.behaviour(route, i18n.translator("fr"),
                              lambda n: render.national(n, "FR"))
    assert text == ("Les appels sonnent uniquement sur le 06 12 34 56 78 (touche 1 pour "
                    "répondre), en affichant le 01 40 00 00 00 ; les appels sans réponse "
                    "vont sur la messagerie 1001@default.")

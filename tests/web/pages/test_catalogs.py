"""Every word on a page comes from a catalog, and both catalogs have every key."""

from __future__ import annotations

import re
from pathlib import Path

from agi.web.pages import i18n

TEMPLATES = Path(i18n.__file__).parent / "templates"
KEY = re.compile(r"""\bt\(\s*["']([a-z_.\-]+)["']""")
DYNAMIC = re.compile(r"""\bt\(\s*["']([a-z_.\-]+\.)["']\s*~""")
# Prefixes completed at render time, and the values each can take.
DYNAMIC_KEYS = {
    "lang.": ["fr", "en"], "tab.": ["forwarding", "devices", "voicemail"],
    "when.": ["always", "offline", "busy", "noanswer"],
    "fw.caller_id.": ["original", "company", "original-fallback"],
    "dev.keypress.": ["default", "true", "false"], "role.": ["admin", "user"],
    "vm.": ["mailbox", "did", "confirm_tries", "confirm_timeout", "confirm_prompt"],
    "action.": ["ext.put", "ext.update", "ext.remove", "forwarding.set", "forwarding.toggle",
                "device.put", "device.update", "device.remove", "company.set"],
    "code.": ["invalid_extension", "not_found", "invalid_number", "international",
              "premium_rate", "emergency", "short_code", "own_number", "did_taken",
              "did_loop", "invalid_device", "invalid_mailbox", "invalid_sound",
              "out_of_range", "invalid_choice", "no_target", "after_needs_noanswer",
              "not_a_device", "invalid_name", "changed", "stale", "admin_only", "exists",
              "invalid_username", "weak_password", "not_yours"],
}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        keys |= {key for key in KEY.findall(text) if not key.endswith(".")}
        for prefix in DYNAMIC.findall(text):
            keys |= {prefix + value for value in DYNAMIC_KEYS[prefix]}
    python = "".join(p.read_text() for p in TEMPLATES.parent.glob("*.py"))
    keys |= set(re.findall(r'(?:error|title_key|message_key)="([a-z_.]+)"', python))
    return keys


def test_both_catalogs_have_the_same_keys_and_every_key_used():
    english, french = i18n.catalog("en"), i18n.catalog("fr")
    assert set(english) == set(french)
    missing = used_keys() - set(english)
    assert not missing, missing


def test_every_admin_layer_code_has_a_sentence():
    from agi.admin import errors

    codes = {value for name, value in vars(errors).items()
             if name.isupper() and isinstance(value, str)}
    assert codes, "the admin layer's code constants moved"
    assert {f"code.{code}" for code in codes} <= set(i18n.catalog("fr"))


def test_templates_hold_no_words_of_their_own():
    """Text between tags is a catalog call, a value, or punctuation."""
    for path in TEMPLATES.glob("*.html"):
        text = re.sub(r"{%.*?%}|{{.*?}}|{#.*?#}", "", path.read_text(), flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text)
        text = re.sub(r'[\w-]+="[^"]*"', " ", text)  # attributes a macro adds
        words = re.findall(r"[A-Za-zÀ-ÿ]{2,}", text)
        assert words == [], (path.name, words)


def test_french_reads_like_ooma():
    fr = i18n.catalog("fr")
    assert fr["tab.forwarding"] == "Renvoi automatique"
    assert fr["tab.devices"] == "Dispositifs"
    assert fr["fw.require_keypress"] == "Pression de touche pour réponse obligatoire"
    assert fr["action.save"] == "Enregistrer"


def test_accept_language_picks_the_best_catalog():
    assert i18n.from_accept_language("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert i18n.from_accept_language("de-DE,en;q=0.5,fr;q=0.7") == "fr"
    assert i18n.from_accept_language("de") == "en"
    assert i18n.choose("en", "fr") == "en"

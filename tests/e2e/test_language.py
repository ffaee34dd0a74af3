"""The phone speaks the office's language, on the real PBX (docs/language.md).

Asterisk logs every sound file it plays with the channel's language
(`<PJSIP/carrier-...> Playing 'followme/options.gsm' (language 'fr')`): each assertion
reads those lines for the external leg (PJSIP/carrier) or the caller's channel
(PJSIP/inbound), plus what the SIPp peers saw and the voicemail spool. The test PBX
has the English and French core sounds, and no German ones.
"""

from __future__ import annotations

import re

import pytest

from tests.harness.calls import VOICEMAIL_HOLD_MS, CallResult, carrier, desk
from tests.harness.pbx import TestPBX

TARGET = "+33612345678"
# The language is one more variable of the same MSet (tests/e2e/test_variable_transport.py
# checks that transport in both modes); the dialplan that applies it is the same.
pytestmark = pytest.mark.one_agi_mode
CARRIER = "PJSIP/carrier"
CALLER = "PJSIP/inbound"
# French prompts run longer than the English ones the default hold is sized for.
VOICEMAIL_HOLD = VOICEMAIL_HOLD_MS + 6000


def spoken(result: CallResult, to: str) -> list[tuple[str, str]]:
    """(sound, language) of every file Asterisk played to channels named `to`..."""
    return re.findall(rf"<{re.escape(to)}[^>]*> Playing '([^'.]+)\.\w+' \(language '([^']*)'\)",
                      result.log)


def languages(result: CallResult, to: str) -> set[str]:
    return {language for _, language in spoken(result, to)}


def assert_installed(pbx: TestPBX, language: str, *sounds: str) -> None:
    """Asterisk's own sound index has `sounds` in `language`: it logs the channel's
    language whatever file it found, so this is what makes a `(language 'fr')` line
    mean that the French file played."""
    for sound in sounds:
        index = pbx.asterisk_rx(f"core show sound {sound}")
        assert f"Language {language}:" in index, index


def forward_with_keypress(cli, ext: str = "1001", *options: str) -> None:
    cli("forward", "on", ext, TARGET, "--require-keypress")
    if options:
        cli("ext", "add", ext, *options)


def press(digit: str = "1") -> object:
    return carrier("uas_answer_press", digit=digit, press_after_ms="1500")


def test_the_pbx_has_english_and_french_sounds_and_no_german_ones(pbx):
    for language in ("en", "fr"):
        assert_installed(pbx, language, "followme/options", "vm-intro", "digits/3",
                         "im-sorry")
    assert "Language de:" not in pbx.asterisk_rx("core show sound followme/options")


def test_french_company_prompts_the_callee_in_french_and_1_connects(cli, call, pbx):
    assert_installed(pbx, "fr", "followme/options")
    cli("company", "set", "--language", "fr")
    forward_with_keypress(cli)
    result = call("1001", [desk("1001"), press("1")])
    assert ("followme/options", "fr") in spoken(result, CARRIER), result.describe()
    assert languages(result, CARRIER) == {"fr"}, result.describe()
    assert result.connected_to("carrier"), result.describe()
    assert not result.voicemail_left(), result.describe()


def test_french_voicemail_greets_the_caller_in_french_and_keeps_the_message(cli, call, pbx):
    assert_installed(pbx, "fr", "followme/options", "vm-intro")
    cli("company", "set", "--language", "fr")
    forward_with_keypress(cli, "1001", "--confirm-tries", "1", "--confirm-timeout", "2")
    result = call("1001", [carrier("uas_answer_silent")], hold_ms=VOICEMAIL_HOLD)
    assert ("followme/options", "fr") in spoken(result, CARRIER), result.describe()
    assert not result.connected_to("carrier"), result.describe()
    greetings = [sound for sound, _ in spoken(result, CALLER) if sound.startswith("vm-")]
    assert "vm-intro" in greetings, result.describe()
    assert languages(result, CALLER) == {"fr"}, result.describe()
    assert result.voicemail_greeting == "unavailable", result.describe()
    assert result.voicemail_left(), result.describe()


def test_option_3_reads_the_callers_number_in_french(cli, call, pbx):
    assert_installed(pbx, "fr", *(f"digits/{digit}" for digit in "1234"))
    forward_with_keypress(cli, "1001", "--confirm-tries", "2", "--confirm-timeout", "1",
                          "--language", "fr")
    caller = "+33142"  # a short number: each digit takes ~1 s to say
    result = call("1001", [carrier("uas_answer_press", digit="3", press_after_ms="300")],
                  caller_number=caller)
    said = [sound for sound, language in spoken(result, CARRIER)
            if sound.startswith("digits/") and language == "fr"]
    assert said == [f"digits/{digit}" for digit in "33142"], result.describe()
    assert languages(result, CARRIER) == {"fr"}, result.describe()


def test_an_extension_override_changes_only_that_extension(cli, call, pbx):
    assert_installed(pbx, "fr", "followme/options")
    cli("company", "set", "--language", "fr")
    forward_with_keypress(cli, "1001", "--language", "en")
    forward_with_keypress(cli, "1002")
    english = call("1001", [press("1")])
    assert ("followme/options", "en") in spoken(english, CARRIER), english.describe()
    assert languages(english, CARRIER) == {"en"}, english.describe()
    assert english.connected_to("carrier"), english.describe()
    french = call("1002", [press("1")])
    assert ("followme/options", "fr") in spoken(french, CARRIER), french.describe()
    assert languages(french, CARRIER) == {"fr"}, french.describe()
    assert french.connected_to("carrier"), french.describe()


def test_desk_phones_and_no_setting_keep_the_pbx_language(cli, call):
    forward_with_keypress(cli)  # no language anywhere
    result = call("1001", [press("1")])
    assert ("followme/options", "en") in spoken(result, CARRIER), result.describe()
    assert "CHANNEL(language)" not in result.log, result.describe()
    cli("company", "set", "--language", "fr")
    cli("forward", "off", "1001")
    desk_call = call("1001", [desk("1001")])
    assert desk_call.connected_to("desk 1001"), desk_call.describe()
    assert "CHANNEL(language)" not in desk_call.log, desk_call.describe()


def test_a_language_without_sounds_still_connects_and_keeps_messages(cli, call):
    """No German sounds are installed: Asterisk falls back to its default files, and
    nothing about the call changes."""
    cli("company", "set", "--language", "de")
    forward_with_keypress(cli, "1001", "--confirm-tries", "1", "--confirm-timeout", "2")
    accepted = call("1001", [press("1")])
    assert ("followme/options", "de") in spoken(accepted, CARRIER), accepted.describe()
    assert accepted.connected_to("carrier"), accepted.describe()
    silent = call("1001", [carrier("uas_answer_silent")], hold_ms=VOICEMAIL_HOLD)
    assert languages(silent, CALLER) == {"de"}, silent.describe()
    assert silent.voicemail_left(), silent.describe()

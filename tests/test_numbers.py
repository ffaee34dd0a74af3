"""Number rules: what the CLI may store (phonenumbers) and what a call may dial (guard).

These are the toll-fraud rules: no international forwarding, no premium or shared-cost
numbers, no emergency or short codes, nothing that could smuggle dial syntax. Every
example number was checked to be valid (or not) with the installed phonenumbers.
"""

from __future__ import annotations

import phonenumbers
import pytest

from agi.calling_codes import CALLING_CODES
from agi.guard import is_device, is_extension, is_home_e164, is_mailbox
from agi.numbers import NumberRejected, normalise

COMPANY_NUMBERS = frozenset({"+33142685300", "+12127365000"})

# (id, raw input, home region, stored E.164)
ACCEPTED = [
    ("fr-mobile-national", "06 12 34 56 78", "FR", "+33612345678"),
    ("fr-mobile-compact", "0612345678", "FR", "+33612345678"),
    ("fr-mobile-dotted", "06.12.34.56.78", "FR", "+33612345678"),
    ("fr-mobile-e164", "+33 6 12 34 56 78", "FR", "+33612345678"),
    ("fr-mobile-00-prefix", "0033612345678", "FR", "+33612345678"),
    ("fr-mobile-07", "07 81 23 45 67", "FR", "+33781234567"),
    ("fr-landline-paris", "01 42 68 53 01", "FR", "+33142685301"),
    ("fr-landline-voip-09", "09 72 12 34 56", "FR", "+33972123456"),
    ("fr-freephone", "0 800 123 456", "FR", "+33800123456"),
    ("fr-fullwidth-digits-stored-ascii",
     "\uff10\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "FR", "+33612345678"),
    ("us-landline-e164", "+1 650 253 0000", "US", "+16502530000"),
    ("us-landline-dashes", "650-253-0000", "US", "+16502530000"),
    ("us-landline-with-1", "1 212 736 5001", "US", "+12127365001"),
    ("us-tollfree", "+1 800 356 9377", "US", "+18003569377"),
]

# (id, raw input, home region, words the one-line refusal must contain)
REFUSED = [
    ("uk-mobile-from-fr", "+44 7911 123456", "FR", "only numbers in FR are allowed"),
    ("uk-mobile-from-us", "+44 7911 123456", "US", "only numbers in US are allowed"),
    ("german-landline", "+49 30 1234567", "FR", "is a number in DE"),
    ("german-mobile", "+4915123456789", "FR", "is a number in DE"),
    ("martinique-from-fr", "+596 696 12 34 56", "FR", "is a number in MQ"),
    ("canada-from-us", "+1 416 736 5000", "US", "is a number in CA"),
    ("french-mobile-from-us", "+33 6 12 34 56 78", "US", "is a number in FR"),
    ("fr-premium-0899", "08 99 12 34 56", "FR", "premium-rate"),
    ("fr-premium-compact", "0899123456", "FR", "premium-rate"),
    ("fr-shared-cost-0810", "08 10 12 34 56", "FR", "shared-cost"),
    ("us-premium-900", "1-900-555-0199", "US", "premium-rate"),
    ("us-premium-900-plain", "900 234 5678", "US", "premium-rate"),
    ("fr-112", "112", "FR", "emergency"),
    ("fr-samu-15", "15", "FR", "emergency"),
    ("fr-police-17", "17", "FR", "emergency"),
    ("fr-pompiers-18", "18", "FR", "emergency"),
    ("us-911", "911", "US", "emergency"),
    ("us-112", "112", "US", "emergency"),
    ("fr-short-3615", "3615", "FR", "short code"),
    ("fr-short-3900", "3900", "FR", "short code"),
    ("us-short-411", "411", "US", "short code"),
    ("us-short-611", "611", "US", "short code"),
    ("invalid-fr", "06 12", "FR", "not a valid number"),
    ("invalid-fr-prefix", "0590 12 34 56", "FR", "not a valid number"),
    ("us-vanity", "1-800-FLOWERS", "US", "contains letters"),
    ("fr-ext-suffix", "06 12 34 56 78 ext. 12", "FR", "contains letters"),
    ("us-ext-suffix", "+1 650 253 0000 ext. 12", "US", "contains letters"),
    ("us-ext-x", "+1 650 253 0000 x12", "US", "contains letters"),
    ("injection-pyst2", 'x"\nEXEC Dial "PJSIP/itsp/00881', "FR", "is not a phone number"),
    ("injection-quote", '0612345678" EXEC', "FR", "contains letters"),
    ("injection-ampersand", "0612345678&0899123456", "FR", "not part of a number"),
    ("injection-comma", "0612345678,,60", "FR", "not part of a number"),
    ("injection-semicolon", "0612345678;0899", "FR", "not part of a number"),
    ("injection-dollar", "${EXTEN}", "FR", "contains letters"),
    ("injection-nul", "0612345678\x00", "FR", "is not a phone number"),
    ("empty", "", "FR", "is not a phone number"),
    ("blank", "   ", "FR", "is not a phone number"),
    ("too-long", "0" * 41, "FR", "is not a phone number"),
    ("company-own-fr", "01 42 68 53 00", "FR", "company's own numbers"),
    ("company-own-us", "+1 212 736 5000", "US", "company's own numbers"),
]


@pytest.mark.parametrize(("raw", "country", "e164"), [c[1:] for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_valid_home_numbers_are_stored_as_e164(raw: str, country: str, e164: str) -> None:
    assert normalise(raw, country, own_numbers=COMPANY_NUMBERS) == e164


@pytest.mark.parametrize(("raw", "country", "reason"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_refused_numbers(raw: str, country: str, reason: str) -> None:
    with pytest.raises(NumberRejected) as info:
        normalise(raw, country, own_numbers=COMPANY_NUMBERS)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message and "\r" not in message


def test_own_numbers_skip_cost_rules_but_not_validity() -> None:
    """The company's own number is never dialled, so a premium DID may be recorded."""
    assert normalise("08 99 12 34 56", "FR", purpose="own") == "+33899123456"
    assert normalise("01 42 68 53 00", "FR", own_numbers=COMPANY_NUMBERS,
                     purpose="own") == "+33142685300"
    with pytest.raises(NumberRejected, match="only numbers in FR"):
        normalise("+44 7911 123456", "FR", purpose="own")
    with pytest.raises(NumberRejected, match="emergency"):
        normalise("112", "FR", purpose="own")


def test_examples_are_really_valid_for_phonenumbers() -> None:
    """Guards the tables above: an 'accepted' example must be valid for the library."""
    for _, raw, country, e164 in ACCEPTED:
        number = phonenumbers.parse(e164, country)
        assert phonenumbers.is_valid_number(number), raw


# ---- the calling-code table used on the call path (no phonenumbers there) ----------------

def test_calling_codes_match_phonenumbers_for_every_region() -> None:
    """Drift guard: agi/calling_codes.py is a copy of phonenumbers' data."""
    regions = phonenumbers.SUPPORTED_REGIONS
    assert set(CALLING_CODES) == set(regions)
    mismatched = {region: (CALLING_CODES[region], phonenumbers.country_code_for_region(region))
                  for region in regions
                  if CALLING_CODES[region] != str(phonenumbers.country_code_for_region(region))}
    assert mismatched == {}


# ---- the call-path guards ----------------------------------------------------------------

@pytest.mark.parametrize(("value", "code", "ok"), [
    ("+33612345678", "33", True),
    ("+33142685300", "33", True),
    ("+33123456", "33", True),           # 6 national digits: the shortest accepted
    ("+3312345", "33", False),           # 5: too short (short codes hide here)
    ("+33" + "1" * 13, "33", True),      # 15 digits in all: E.164's maximum
    ("+33" + "1" * 14, "33", False),
    ("+16502530000", "1", True),
    ("+33112", "33", False),
    ("+3315", "33", False),
    ("+33", "33", False),
    ("", "33", False),
    ("33612345678", "33", False),
    ("0612345678", "33", False),
    ("+447911123456", "33", False),
    ("+336 12345678", "33", False),
    ("+33612345678\n", "33", False),
    ("+33612345678&PJSIP/x", "33", False),
    ("+33-612345678", "33", False),
    ("+33\uff1612345678", "33", False),  # fullwidth digit six: isdigit() but not ASCII
    ("+33612345678\u00b2", "33", False),  # superscript two
    ("+33\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "33", False),  # Arabic-Indic
    ("+1" + "6502530000", "33", False),
], ids=lambda x: repr(x) if isinstance(x, str) else None)
def test_is_home_e164(value: str, code: str, ok: bool) -> None:
    assert is_home_e164(value, code) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("PJSIP/1001", True), ("SIP/1001", True), ("IAX2/office-1", True), ("DAHDI/1", True),
    ("PJSIP/desk_1001.b", True),
    ("PJSIP/1001&PJSIP/1002", False), ("PJSIP/1001,30", False), ("PJSIP/1001 ", False),
    ("PJSIP/${EXTEN}", False), ('PJSIP/"x"', False), ("PJSIP/", False), ("/1001", False),
    ("1001", False), ("PJSIP/00881234@carrier", False), ("PJSIP/carrier/sip:+44@itsp", False),
    ("Local/1001", False), ("local/0088@from-internal", False), ("PJSIP/1001\n", False),
], ids=repr)
def test_is_device(value: str, ok: bool) -> None:
    assert is_device(value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("1001", True), ("sales-desk_2", True), ("a" * 32, True), ("a" * 33, False), ("", False),
    ("1001&x", False), ("10 01", False), ("1001\n", False), ("1001@default", False),
    ("\uff11\uff10\uff10\uff11", False),
], ids=repr)
def test_is_extension(value: str, ok: bool) -> None:
    assert is_extension(value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("1001@default", True), ("sales@office-2", True), ("1001", False), ("@default", False),
    ("1001@", False), ("1001@default,u", False), ('1001@de"fault', False),
    ("1001@default@x", False),
], ids=repr)
def test_is_mailbox(value: str, ok: bool) -> None:
    assert is_mailbox(value) is ok

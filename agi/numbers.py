"""Write-time validation of phone numbers: the toll-fraud rules.

Only the CLI imports this (phonenumbers is heavy). A number is stored only as the
E.164 string we format ourselves, never as the admin's raw input: phonenumbers
accepts vanity letters and drops "ext." suffixes, and neither may reach Dial().
"""

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

# Raw input longer than this is refused before parsing (no real number is that long).
_MAX_INPUT = 40
_REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.UAN: "a universal access (non-geographic premium) number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.VOICEMAIL: "a voicemail-access number",
}


# NumberRejected.code values: the admin layer's refusal codes for numbers.
INVALID = "invalid_number"
EMERGENCY = "emergency"
SHORT_CODE = "short_code"
INTERNATIONAL = "international"
PREMIUM_RATE = "premium_rate"
OWN_NUMBER = "own_number"


class NumberRejected(ValueError):
    """The number may not be stored; the message says why, in one line, and `code`
    which rule refused it (one of the codes above)."""

    def __init__(self, message: str, code: str = INVALID):
        super().__init__(message)
        self.code = code


def normalise(raw: str, country: str, *, own_numbers: frozenset[str] = frozenset(),
              purpose: str = "target") -> str:
    """The E.164 form of `raw`, or NumberRejected explaining the refusal.

    `purpose` is "target" for anything callroute will dial out (forward targets and
    external devices) and "own" for the company's and extensions' own numbers, which
    are never dialled and so skip the cost rules.
    """
    text = raw.strip()
    shown = text[:_MAX_INPUT] if text.isprintable() else repr(text[:_MAX_INPUT])
    if not text or len(text) > _MAX_INPUT or not text.isprintable():
        raise NumberRejected(f"{shown!s} is not a phone number")
    if any(ch.isalpha() for ch in text):
        raise NumberRejected(f"{shown} contains letters; give the digits of the number")
    # Parentheses and dashes are ordinary US formatting; these never are.
    if any(ch in text for ch in "\"'\\&,;$`|<>{}[]"):
        raise NumberRejected(f"{shown} contains characters that are not part of a number")
    if shortnumberinfo.is_emergency_number(text, country) or (
            shortnumberinfo.connects_to_emergency_number(text, country)):
        raise NumberRejected(f"{shown} is an emergency number; it can't be used",
                             EMERGENCY)
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        raise NumberRejected(f"{shown} is not a phone number") from None
    if number.extension:
        raise NumberRejected(f"{shown} has an extension part; give the number alone")
    if shortnumberinfo.is_valid_short_number(number):
        raise NumberRejected(f"{shown} is a short code; give a full number", SHORT_CODE)
    if not phonenumbers.is_valid_number(number):
        raise NumberRejected(f"{shown} is not a valid number")
    home_code = phonenumbers.country_code_for_region(country)
    region = phonenumbers.region_code_for_number(number)
    if number.country_code != home_code or region != country:
        where = region or f"+{number.country_code}"
        raise NumberRejected(f"{shown} is a number in {where}; only numbers in {country} "
                             "are allowed (no international forwarding)", INTERNATIONAL)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if purpose == "target":
        kind = phonenumbers.number_type(number)
        if kind in _REFUSED_TYPES:
            raise NumberRejected(f"{shown} is {_REFUSED_TYPES[kind]}; it can't be dialled",
                                 PREMIUM_RATE)
        if e164 in own_numbers:
            raise NumberRejected(f"{shown} is one of the company's own numbers; forwarding "
                                 "to it would loop through the public network", OWN_NUMBER)
    return e164

"""Call-time checks on everything read from Redis before it can reach Dial().

Redis is writable by more than our CLI, so nothing in it is trusted. These checks
are deliberately strict and cheap (no phonenumbers import): a value that fails is
never dialled, and the call falls back to ringing the extension's own phones.
"""

import re

# E.164 allows at most 15 digits after the "+", calling code included.
_E164_MAX_DIGITS = 15
# Shortest national number we accept: rules out emergency and short codes such
# as "+33112" or "+3315" that a tampered store might hold.
_NATIONAL_MIN_DIGITS = 6

# An extension is used in Redis keys, mailbox names and dial-string templates,
# so it gets the narrowest alphabet that real numbering plans need.
_EXTENSION = re.compile(r"[0-9A-Za-z_-]{1,32}")
# TECH/resource, without any character Dial() treats as syntax: "&" (another
# leg), "," (the next argument), "(" ")", quotes, spaces or "$" "{" "}". A device is
# one of the PBX's own phones, so the resource is a plain endpoint name: no "@", "/"
# or ":" (PJSIP/00881234@carrier or PJSIP/carrier/sip:... would dial out through the
# trunk), and no Local channel (a jump into any dialplan context).
_DEVICE = re.compile(r"(?!(?i:local)/)[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9_.-]{1,64}")
_MAILBOX = re.compile(r"[0-9A-Za-z_-]{1,32}@[0-9A-Za-z_-]{1,32}")


def is_extension(value: str) -> bool:
    return _EXTENSION.fullmatch(value) is not None


def is_device(value: str) -> bool:
    return _DEVICE.fullmatch(value) is not None


def is_mailbox(value: str) -> bool:
    return _MAILBOX.fullmatch(value) is not None


# Why a well-formed home-code number may still not be dialled (see dialable_refusal).
# FOREIGN covers both another country sharing the home calling code and a number no
# country's ranges hold (see _in_home_region).
FOREIGN = "is not a number in the home country"
COSTLY = "is a premium-rate, shared-cost or similar number"
NOT_FULL = "is not a full national number (a short code?)"


def is_home_e164(value: str, calling_code: str) -> bool:
    """True for "+", the home calling code, then a plausible national number."""
    prefix = "+" + calling_code
    if not value.startswith(prefix):
        return False
    national = value[len(prefix):]
    return (
        national.isascii()
        and national.isdigit()
        and _NATIONAL_MIN_DIGITS <= len(national) <= _E164_MAX_DIGITS - len(calling_code)
    )


def dialable_refusal(value: str, region: str, calling_code: str) -> str:
    """Why `value`, which passed is_home_e164, may not be dialled out; "" if it may.

    The calling code alone is not enough: it is shared by several countries for +1 (so
    a US home would reach Jamaica at +1 876), +44 (a GB home would reach a Jersey mobile
    at +44 7797), +7, +39, +262 and others, and a home-country premium range
    (+33 899...) has the home code. These checks use agi/guard_tables.py, data generated
    from phonenumbers (checked against it by tests/test_toll_fraud.py), and the tables
    are imported only when a number is about to be dialled. The country comes first so
    that another country's full number is reported as foreign, whatever its length.
    """
    from agi import guard_tables

    national = value[1 + len(calling_code):]
    shared = guard_tables.SHARED_CALLING_CODES.get(calling_code)
    if shared is not None and not _in_home_region(national, region, shared):
        return FOREIGN
    if len(national) not in guard_tables.NATIONAL_LENGTHS.get(region, ()):
        return NOT_FULL
    if region not in _costly:
        pattern = guard_tables.COSTLY_PATTERNS.get(region)
        _costly[region] = re.compile(pattern) if pattern else None
    costly = _costly[region]
    if costly is not None and costly.fullmatch(national):
        return COSTLY
    return ""


def _in_home_region(national: str, home: str, regions: tuple[tuple[str, str], ...]) -> bool:
    """True if phonenumbers' region_code_for_number gives `national` to `home`.

    `regions` is its calling code's (region, regex) list, in phonenumbers' order: the
    first region whose regex matches owns the number, as in phonenumbers. The loop
    stops at `home`, so the regexes of the regions after it are never compiled: which
    of them owns the number changes nothing, it is refused either way. A number that
    `home` doesn't own is refused even when no region owns it (phonenumbers gives it
    no region: an invalid number, which the CLI refuses too): it can't be shown to be
    a home number, and dialling it is what a tampered store would want.
    """
    for owner, pattern in regions:
        if owner not in _owners:
            _owners[owner] = re.compile(pattern)
        if _owners[owner].fullmatch(national):
            return owner == home
        if owner == home:
            return False
    return False


_costly: dict[str, re.Pattern[str] | None] = {}
# Region -> its SHARED_CALLING_CODES regex, compiled on first use.
_owners: dict[str, re.Pattern[str]] = {}

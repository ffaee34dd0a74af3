"""Generates agi/guard_tables.py from phonenumbers' metadata (the call path can't import it).

    .venv/bin/python -m tests.guard_tables_gen > agi/guard_tables.py

tests/test_security.py checks the committed file equals what this renders with the
installed phonenumbers, so an upgrade that changes the data fails a test, never silently.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

# The types the CLI refuses as targets (agi/numbers.py _REFUSED_TYPES), by metadata field.
COSTLY_FIELDS = ("premium_rate", "shared_cost", "uan", "pager", "voicemail")
COSTLY_TYPES = (PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST,
                PhoneNumberType.UAN, PhoneNumberType.PAGER, PhoneNumberType.VOICEMAIL)
# Subscriber parts tried after each area code and first exchange digit: enough to find a
# valid number in every NANP area code phonenumbers knows (checked: no area code
# yields two regions).
_NANP_SAMPLES = ("234567", "555123", "000000", "987654")


def nanp_area_codes() -> dict[str, str]:
    """Area code -> the region phonenumbers assigns to valid numbers in it (+1 only)."""
    found: dict[str, set[str]] = {}
    # Regions phonenumbers recognises by leading digits (the Caribbean): by the prefix
    # alone, as region_code_for_number does, so narrow exchange ranges can't be missed.
    by_prefix = [(region, re.compile(meta.leading_digits)) for region, meta in
                 ((r, PhoneMetadata.metadata_for_region(r))
                  for r in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]) if meta.leading_digits]
    for npa in range(200, 1000):
        for region, leading in by_prefix:
            if leading.match(f"{npa}2345678"):
                found.setdefault(str(npa), set()).add(region)
        for first in "23456789":
            for rest in _NANP_SAMPLES:
                number = phonenumbers.parse(f"+1{npa}{first}{rest}")
                if phonenumbers.is_valid_number(number):
                    region = phonenumbers.region_code_for_number(number)
                    found.setdefault(str(npa), set()).add(region)
    conflicts = {npa: regions for npa, regions in found.items() if len(regions) > 1}
    if conflicts:
        raise ValueError(f"area codes shared by several regions: {conflicts}")
    return {npa: regions.pop() for npa, regions in sorted(found.items())}


def costly_patterns() -> dict[str, str]:
    """Region -> one regex of its premium-rate, shared-cost, UAN, pager and voicemail
    national numbers, exactly phonenumbers' own patterns (empty regions left out)."""
    table: dict[str, str] = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        meta = PhoneMetadata.metadata_for_region(region)
        parts = [desc.national_number_pattern for desc in
                 (getattr(meta, name) for name in COSTLY_FIELDS)
                 if desc is not None and desc.national_number_pattern]
        if parts:
            table[region] = "|".join(f"(?:{part})" for part in parts)
    return table


def national_lengths() -> dict[str, str]:
    """Region -> the lengths a full national number can have there ("9", or "5,6,7")."""
    table = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        lengths = PhoneMetadata.metadata_for_region(region).general_desc.possible_length
        table[region] = ",".join(str(n) for n in sorted(set(lengths)))
    return table


def _wrap(items: list[str], width: int = 88) -> list[str]:
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) + 1 > width:
            lines.append(line)
            line = ""
        line += item + " "
    if line:
        lines.append(line)
    return [f"    {line!r}" for line in lines]


def render() -> str:
    nanp = [f"{npa}:{region}" for npa, region in nanp_area_codes().items()]
    costly = costly_patterns()
    out = [
        "# ruff: noqa: E501",
        '"""Number data for the call-path guard, generated from phonenumbers '
        f'{phonenumbers.__version__}.',
        "",
        "Do not edit: regenerate with `python -m tests.guard_tables_gen > agi/guard_tables.py`.",
        "tests/test_security.py fails when this file and the installed phonenumbers differ.",
        '"""',
        "",
        "# NANP (+1) area code -> region: +1 is shared by the US, Canada and the Caribbean,",
        "# so the calling code alone can't tell a US number from a Jamaican one.",
        "_NANP = (",
        *_wrap(nanp),
        ")",
        "",
        "NANP_AREA_CODES: dict[str, str] = dict(",
        "    item.split(\":\") for item in _NANP.split()  # type: ignore[misc]",
        ")",
        "",
        "# Region -> the possible lengths of a full national number: a short code or",
        "# directory-enquiry number (+33118218) has the home calling code but not the length.",
        "_LENGTHS = (",
        *_wrap([f"{region}:{lengths}" for region, lengths in national_lengths().items()]),
        ")",
        "",
        "NATIONAL_LENGTHS: dict[str, frozenset[int]] = {",
        "    region: frozenset(int(n) for n in lengths.split(\",\"))",
        "    for region, _, lengths in (item.partition(\":\") for item in _LENGTHS.split())",
        "}",
        "",
        "# Region -> regex (fullmatch on the national number) of premium-rate, shared-cost,",
        "# UAN, pager and voicemail-access numbers: phonenumbers' own patterns.",
        "COSTLY_PATTERNS: dict[str, str] = {",
        *[f"    {region!r}: {pattern!r}," for region, pattern in costly.items()],
        "}",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")

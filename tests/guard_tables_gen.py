"""Generates agi/guard_tables.py from phonenumbers' metadata (the call path can't import it).

    .venv/bin/python -m tests.guard_tables_gen > agi/guard_tables.py

tests/test_toll_fraud.py checks the committed file equals what this renders with the
installed phonenumbers, so an upgrade that changes the data fails a test, never silently.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

# The types the CLI refuses as targets (agi/numbers.py _REFUSED_TYPES), by metadata field.
COSTLY_FIELDS = ("premium_rate", "shared_cost", "uan", "pager", "voicemail")
COSTLY_TYPES = (PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST,
                PhoneNumberType.UAN, PhoneNumberType.PAGER, PhoneNumberType.VOICEMAIL)
# The metadata fields phonenumbers' _number_type_helper tries: a number matching any of
# them (and the general description) is a valid number of the region. Mobile is last
# because phonenumbers skips it when its pattern is the fixed-line one.
_TYPE_FIELDS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
                "pager", "uan", "voicemail", "fixed_line", "mobile")


def _desc_pattern(desc: PhoneNumberDesc) -> str:
    """A regex that fullmatches what phonenumbers' _is_number_matching_desc accepts: the
    desc's pattern, behind a lookahead for its possible lengths when it lists any."""
    lengths = "|".join(rf"\d{{{n}}}" for n in sorted(set(desc.possible_length)))
    guard = rf"(?=(?:{lengths})\Z)" if lengths else ""
    return f"{guard}(?:{desc.national_number_pattern})"


def _region_pattern(region: str) -> str:
    """A regex that fullmatches the national numbers region_code_for_number gives to
    `region` among its calling code's regions (those before it aside).

    With leading digits, phonenumbers decides by prefix alone (re.match, so any digits
    may follow); otherwise the number must be valid there: the general description and
    at least one type, as _number_type_helper tries them.
    """
    meta = PhoneMetadata.metadata_for_region(region)
    if meta.leading_digits:
        return rf"(?:{meta.leading_digits})\d*"
    fields = _TYPE_FIELDS[:-1] if meta.same_mobile_and_fixed_line_pattern else _TYPE_FIELDS
    types = [_desc_pattern(desc) for desc in (getattr(meta, name) for name in fields)
             if desc is not None and desc.national_number_pattern]
    general = _desc_pattern(meta.general_desc)
    return rf"(?={general}\Z)(?:{'|'.join(types)})"


def shared_calling_codes() -> dict[str, list[tuple[str, str]]]:
    """Calling code -> (region, _region_pattern) in phonenumbers' order, main country
    first, for every calling code shared by several regions (+1, +7, +44, +262...)."""
    return {str(code): [(region, _region_pattern(region)) for region in regions]
            for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items())
            if len(regions) > 1}


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
    costly = costly_patterns()
    out = [
        "# ruff: noqa: E501",
        '"""Number data for the call-path guard, generated from phonenumbers '
        f'{phonenumbers.__version__}.',
        "",
        "Do not edit: regenerate with `python -m tests.guard_tables_gen > agi/guard_tables.py`.",
        "tests/test_toll_fraud.py fails when this file and the installed phonenumbers differ.",
        '"""',
        "",
        "# Calling code -> (region, regex) for the codes several regions share, in",
        "# phonenumbers' order (main country first): a national number belongs to the first",
        "# region whose regex it fullmatches, as phonenumbers.region_code_for_number decides,",
        "# and to none if it is no valid number there (+1 876... is Jamaica's, not the US').",
        "SHARED_CALLING_CODES: dict[str, tuple[tuple[str, str], ...]] = {",
        *[line for code, regions in shared_calling_codes().items() for line in (
            f"    {code!r}: (",
            *[f"        ({region!r}, {pattern!r})," for region, pattern in regions],
            "    ),")],
        "}",
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

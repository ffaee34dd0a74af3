"""Value checks of the admin layer: input in, checked value out, or Refused.

Every interface (CLI, feature codes, HTTP API) gets its refusals from here, so one bad
value gets one code and one sentence everywhere. phonenumbers is imported only when a
number is checked.
"""

from __future__ import annotations

from agi import fields as f
from agi import schema as s
from agi.admin import errors as e
from agi.config import Config
from agi.guard import is_device, is_extension, is_mailbox

NAME_MAX = 64


def extension(ext: str) -> str:
    if not is_extension(ext):
        raise e.Refused.one(e.INVALID_EXTENSION, "extension",
                            f"{ext!r} is not a valid extension (letters, digits, '_' or '-', "
                            "at most 32)")
    return ext


def exists(ext: str, fields: dict[str, str]) -> dict[str, str]:
    if not fields:
        raise e.NotFound(ext)
    return dict(fields)


def number(raw: str, config: Config, field: str, *, own: frozenset[str] = frozenset(),
           purpose: str = "target") -> str:
    """`raw` as E.164 under the toll-fraud rules of agi/numbers.py."""
    from agi.numbers import NumberRejected, normalise

    try:
        return normalise(raw, config.country, own_numbers=own, purpose=purpose)
    except NumberRejected as exc:
        raise e.Refused.one(exc.code, field, str(exc)) from None


def own_numbers(ext: str, fields: dict[str, str], company: dict[str, str]) -> frozenset[str]:
    """Numbers `ext` may never forward to or ring: the company number and its own DID.

    Forwarding there would loop through the public network. Other extensions' DIDs are
    allowed: a call to one hops to that extension's rules inside the PBX.
    """
    numbers = {company.get(s.F_COMPANY_CALLER_ID, ""), fields.get(s.F_DID, "")}
    numbers |= {key.removeprefix(s.F_COMPANY_DID_PREFIX) for key, owner in company.items()
                if key.startswith(s.F_COMPANY_DID_PREFIX) and owner == ext}
    return frozenset(n for n in numbers if n)


def devices(items: list[str], ext: str) -> list[str]:
    for device in items:
        if not is_device(device):
            raise e.Refused.one(e.INVALID_DEVICE, s.F_DEVICES,
                                f"{device!r} is not a dial string such as PJSIP/{ext}")
    return list(dict.fromkeys(items))


def mailbox(text: str, ext: str) -> str:
    if not is_mailbox(text):
        raise e.Refused.one(e.INVALID_MAILBOX, s.F_MAILBOX,
                            f"{text!r} is not a mailbox such as {ext}@default")
    return text


def sound(text: str, field: str = s.F_CONFIRM_PROMPT) -> str:
    if not f.is_sound(text):
        raise e.Refused.one(e.INVALID_SOUND, field,
                            f"{text[:70]!r} is not a sound name such as custom/press-1 "
                            f"(letters, digits, '_', '-' and '/', at most {f.SOUND_MAX} "
                            "characters, no extension)")
    return text


def whole(value: int | str, bounds: tuple[int, int], field: str) -> int:
    """A whole number within `bounds`; text is read as ASCII digits only."""
    text = str(value).strip()
    checked = None if type(value) is bool else f.integer(text, bounds)
    if checked is None:
        raise e.Refused.one(e.OUT_OF_RANGE, field,
                            f"{text[:20]!r} is not a whole number from {bounds[0]} to "
                            f"{bounds[1]}")
    return checked


def conditions(items: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """forward_when as conditions: () for always; unknown words or 'always' mixed in are
    refused. Returned in canonical order, duplicates dropped."""
    words = [item.strip() for item in items]
    if words == [f.WHEN_ALWAYS]:
        return ()
    if not all(word in f.CONDITIONS for word in words):
        text = ",".join(items)
        raise e.Refused.one(e.INVALID_CHOICE, s.F_FORWARD_WHEN,
                            f"{text!r} is not 'always' or a comma-separated list of "
                            f"{', '.join(f.CONDITIONS)} ('always' can't be combined)")
    return tuple(c for c in f.CONDITIONS if c in words)


def caller_id(mode: str) -> str:
    if mode not in s.CALLER_ID_MODES:
        raise e.Refused.one(e.INVALID_CHOICE, s.F_FORWARD_CALLER_ID,
                            f"invalid choice: {mode[:40]!r} (choose from "
                            f"{', '.join(s.CALLER_ID_MODES)})")
    return mode


def name(text: str) -> str:
    clean = text.strip()
    if not clean or not clean.isprintable() or len(clean) > NAME_MAX:
        raise e.Refused.one(e.INVALID_NAME, s.F_COMPANY_NAME,
                            f"the company name must be 1 to {NAME_MAX} printable characters")
    return clean


def flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise e.Refused.one(e.INVALID_CHOICE, field, f"{field} must be true or false")
    return value

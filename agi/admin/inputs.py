"""Typed inputs of the admin writes. UNSET keeps the stored value; None, where a type
allows it, removes the setting (back to the default)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypeVar

T = TypeVar("T")


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset.UNSET
Maybe = T | Literal[_Unset.UNSET]


def given(value: object) -> bool:
    return value is not UNSET


@dataclass(frozen=True)
class ExtensionChanges:
    devices: Maybe[list[str]] = UNSET
    mailbox: Maybe[str] = UNSET
    did: Maybe[str | None] = UNSET  # as typed; None or "" removes it
    externals_during_calls: Maybe[bool] = UNSET
    confirm_tries: Maybe[int | None] = UNSET
    confirm_timeout: Maybe[int | None] = UNSET
    confirm_prompt: Maybe[str | None] = UNSET


@dataclass(frozen=True)
class ForwardingChanges:
    """`enabled=False` keeps the target: turning forwarding off is unticking a box."""

    enabled: Maybe[bool] = UNSET
    target: Maybe[str] = UNSET  # as typed, any format
    when: Maybe[tuple[str, ...]] = UNSET  # () = always, else offline/busy/noanswer
    after: Maybe[int] = UNSET
    caller_id: Maybe[str] = UNSET
    require_keypress: Maybe[bool] = UNSET


@dataclass(frozen=True)
class DeviceChanges:
    require_keypress: Maybe[bool | None] = UNSET  # None: as the extension's setting
    delay: Maybe[int] = UNSET
    ring: Maybe[int | None] = UNSET  # None: the dialplan's ring time


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit trail: `cli:<unix user>`, `api:<user>`,
    `web:<user>` or `phone:<ext>`; `source` is the client address over HTTP."""

    name: str
    source: str = ""

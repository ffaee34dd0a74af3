"""Refusals: why the admin layer did not make a change, as values any interface shows.

A refusal is (code, field, message): `code` is machine-readable (the HTTP API maps it
to a status, docs/admin.md lists them all), `field` names the input it concerns, and
`message` is one human sentence. Every refusal is raised before anything is written.
"""

from __future__ import annotations

from typing import NamedTuple

INVALID_EXTENSION = "invalid_extension"
NOT_FOUND = "not_found"
INVALID_NUMBER = "invalid_number"
INTERNATIONAL = "international"
PREMIUM_RATE = "premium_rate"
EMERGENCY = "emergency"
SHORT_CODE = "short_code"
OWN_NUMBER = "own_number"
DID_TAKEN = "did_taken"
DID_LOOP = "did_loop"
INVALID_DEVICE = "invalid_device"
INVALID_MAILBOX = "invalid_mailbox"
INVALID_SOUND = "invalid_sound"
OUT_OF_RANGE = "out_of_range"
INVALID_CHOICE = "invalid_choice"
NO_TARGET = "no_target"
AFTER_NEEDS_NOANSWER = "after_needs_noanswer"
NOT_A_DEVICE = "not_a_device"
INVALID_NAME = "invalid_name"
CHANGED = "changed"
STALE = "stale"


class Refusal(NamedTuple):
    code: str
    field: str
    message: str


class Refused(Exception):
    """The change was refused; nothing was written. str() is the sentences joined."""

    def __init__(self, *refusals: Refusal):
        self.refusals = list(refusals)
        super().__init__("; ".join(r.message for r in refusals))

    @classmethod
    def one(cls, code: str, field: str, message: str) -> Refused:
        return cls(Refusal(code, field, message))


class NotFound(Refused):
    """The extension does not exist (HTTP 404)."""

    def __init__(self, ext: str):
        super().__init__(Refusal(NOT_FOUND, "extension", f"extension {ext} does not exist"))


class Stale(Refused):
    """`if_match` is not the extension's current version (HTTP 412): someone else
    changed it since the caller read it."""

    def __init__(self, ext: str):
        super().__init__(Refusal(STALE, "version", f"extension {ext} was changed since it "
                                                   "was read; read it again"))

"""Request bodies: strict JSON types, no unknown fields, converted to the admin layer's
typed inputs. Only types and sizes are checked here; every value rule (numbers, ranges,
choices, devices) is the admin layer's, so the API answers with the CLI's codes.

A field left out keeps its stored value (UNSET); null, where a type allows it, removes
the setting. Defaults are never validated, so an explicit null for a non-nullable field
is a 422 while an absent one is not.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from agi.admin import UNSET, DeviceChanges, ExtensionChanges, ForwardingChanges
from agi.web.errors import ApiError

Short = Annotated[str, Field(max_length=64)]
Text = Annotated[str, Field(max_length=256)]
WHEN_ALWAYS = "always"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def given(self) -> dict:
        """The fields the client sent, with their values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class Confirm(_Strict):
    tries: int | None = None
    timeout: int | None = None
    prompt: Text | None = None


class ExtensionPatch(_Strict):
    devices: Annotated[list[Text], Field(max_length=32)] = None  # type: ignore[assignment]
    did: Short | None = None
    mailbox: Text = None  # type: ignore[assignment]
    externals_during_calls: bool = None  # type: ignore[assignment]
    confirm: Confirm = None  # type: ignore[assignment]
    language: Short | None = None  # null: the company's

    def changes(self) -> ExtensionChanges:
        sent = self.given()
        sent.pop("extension", None)
        confirm = sent.pop("confirm", None)
        if confirm is not None:
            sent.update({f"confirm_{name}": value for name, value in confirm.given().items()})
        return ExtensionChanges(**sent)


class ExtensionCreate(ExtensionPatch):
    extension: Short


class ForwardingPatch(_Strict):
    enabled: bool = None  # type: ignore[assignment]
    target: Short = None  # type: ignore[assignment]
    when: Short | Annotated[list[Short], Field(max_length=3)] = None  # type: ignore[assignment]
    after: int = None  # type: ignore[assignment]
    caller_id: Short = None  # type: ignore[assignment]
    require_keypress: bool = None  # type: ignore[assignment]

    def changes(self) -> ForwardingChanges:
        sent = self.given()
        when = sent.get("when", UNSET)
        if isinstance(when, str):
            if when != WHEN_ALWAYS:
                raise ApiError(422, "invalid_choice", "when is 'always' or a list of "
                               "offline, busy and noanswer", field="when")
            sent["when"] = ()
        elif isinstance(when, list):
            sent["when"] = tuple(when)
        return ForwardingChanges(**sent)


class DevicePatch(_Strict):
    require_keypress: bool | None = None
    delay: int = None  # type: ignore[assignment]
    ring: int | None = None

    def changes(self) -> DeviceChanges:
        return DeviceChanges(**{name: value for name, value in self.given().items()
                                if name != "number"})


class DeviceCreate(DevicePatch):
    number: Short


class CompanyPatch(_Strict):
    caller_id: Short = None  # type: ignore[assignment]
    name: Text = None  # type: ignore[assignment]
    language: Short | None = None  # null: none, the PBX's own


# What an employee (role "user") may change in PATCH .../forwarding.
USER_FORWARDING_FIELDS = frozenset({"enabled", "target", "when", "after", "require_keypress"})

"""Form posts -> the admin layer's typed inputs, and its refusals -> the form's fields.

Only the shape of a form is handled here (checkbox present, a whole number typed);
every value rule is the admin layer's, so a page refuses exactly what the CLI and the
API refuse, with the same codes.
"""

from __future__ import annotations

from agi.admin import UNSET, DeviceChanges, ExtensionChanges, ForwardingChanges, Refusal

Form = dict[str, list[str]]
WHEN_ALWAYS = "always"
WHEN_CONDITIONS = ("offline", "busy", "noanswer")
CALLER_IDS = ("original", "company", "original-fallback")

# The admin layer names stored fields; the forms use the API's names.
FORM_FIELD = {
    "forward_enabled": "enabled", "forward_target": "target", "forward_when": "when",
    "forward_after": "after", "forward_caller_id": "caller_id",
    "forward_require_keypress": "require_keypress", "external_devices": "number",
    "confirm_tries": "confirm_tries", "confirm_timeout": "confirm_timeout",
    "confirm_prompt": "confirm_prompt", "company caller_id": "caller_id",
    "extension": "extension",
}


class FormRefused(ValueError):
    """A form that can't even be turned into an admin-layer input."""

    def __init__(self, *refusals: Refusal):
        super().__init__("; ".join(r.message for r in refusals))
        self.refusals = list(refusals)


def value(form: Form, name: str) -> str:
    return (form.get(name) or [""])[0].strip()


def checked(form: Form, name: str) -> bool:
    return bool(form.get(name))


def whole(form: Form, name: str, *, optional: bool = False) -> int | None:
    text = value(form, name)
    if optional and text == "":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise FormRefused(Refusal("out_of_range", name, f"{text[:20]!r} is not a whole number"))
    return int(text)


def when_of(form: Form) -> tuple[str, ...]:
    chosen = [w for w in form.get("when", []) if w]
    if any(w not in (WHEN_ALWAYS, *WHEN_CONDITIONS) for w in chosen) or (
            WHEN_ALWAYS in chosen and len(chosen) > 1):
        raise FormRefused(Refusal("invalid_choice", "when", "when is 'always' or a set of "
                                  "offline, busy and noanswer"))
    return tuple(w for w in WHEN_CONDITIONS if w in chosen)


def forwarding(form: Form, *, admin: bool) -> ForwardingChanges:
    """The forwarding tab. `after` is sent only with noanswer (it applies to nothing
    else); caller_id only by an admin's form (the caller checks the role)."""
    when = when_of(form)
    target = value(form, "target")
    return ForwardingChanges(
        enabled=checked(form, "enabled"), target=target or UNSET, when=when,
        after=whole(form, "after") if "noanswer" in when else UNSET,
        caller_id=value(form, "caller_id") if admin and "caller_id" in form else UNSET,
        require_keypress=checked(form, "require_keypress"))


def keypress_choice(form: Form) -> bool | None:
    choice = value(form, "require_keypress")
    if choice not in ("", "true", "false"):
        raise FormRefused(Refusal("invalid_choice", "require_keypress", "invalid choice"))
    return None if choice == "" else choice == "true"


def device(form: Form) -> DeviceChanges:
    return DeviceChanges(require_keypress=keypress_choice(form), delay=whole(form, "delay"),
                         ring=whole(form, "ring", optional=True))


def desk(form: Form) -> ExtensionChanges:
    lines = [line.strip() for line in value(form, "devices").splitlines() if line.strip()]
    return ExtensionChanges(devices=lines,
                            externals_during_calls=checked(form, "externals_during_calls"))


def voicemail(form: Form) -> ExtensionChanges:
    return ExtensionChanges(
        mailbox=value(form, "mailbox"), did=value(form, "did") or None,
        confirm_tries=whole(form, "confirm_tries", optional=True),
        confirm_timeout=whole(form, "confirm_timeout", optional=True),
        confirm_prompt=value(form, "confirm_prompt") or None,
        language=value(form, "language") or None)


def field_errors(refusals: list[Refusal]) -> dict[str, list[str]]:
    """Form field -> the refusal codes beside it ("" for the form as a whole)."""
    out: dict[str, list[str]] = {}
    for refusal in refusals:
        out.setdefault(FORM_FIELD.get(refusal.field, refusal.field), []).append(refusal.code)
    return out


def shown_values(view: dict, tab: str, typed: dict | None, national) -> dict:
    """What each form of an extension's page shows: the stored values (numbers in
    national format), or, on the tab whose post was refused, exactly what was typed."""
    fw, confirm = view["forward"], view["confirm"]
    out = {
        "fw": {"enabled": fw["enabled"], "target": national(fw["target"]) if fw["target"]
               else "", "caller_id": fw["caller_id"], "require_keypress":
               fw["require_keypress"], "when": fw["when"].split(","), "after": fw["after"]},
        "desk": {"devices": "\n".join(view["devices"]),
                 "externals_during_calls": view["externals_during_calls"]},
        "add": {"open": False, "number": "", "keypress": None, "delay": 0, "ring": None},
        "vm": {"mailbox": view["mailbox"], "did": national(view["did"]) if view["did"]
               else "", "confirm_tries": _text(confirm["tries"]),
               "confirm_timeout": _text(confirm["timeout"]),
               "confirm_prompt": _text(confirm["prompt"]),
               "language": _text(view["language"]["own"])},
    }
    if typed is None:
        return out
    if tab == "forwarding":
        out["fw"] = {"enabled": "enabled" in typed, "target": typed.get("target", ""),
                     "caller_id": typed.get("caller_id", fw["caller_id"]),
                     "require_keypress": "require_keypress" in typed,
                     "when": typed.get("when") or [WHEN_ALWAYS],
                     "after": typed.get("after", fw["after"])}
    elif tab == "devices" and typed.get("form") == "add":
        out["add"] = {"open": True, "number": typed.get("number", ""),
                      "keypress": typed.get("require_keypress", ""),
                      "delay": typed.get("delay", ""), "ring": typed.get("ring") or None}
    elif tab == "devices" and "devices" in typed:
        out["desk"] = {"devices": typed["devices"],
                       "externals_during_calls": "externals_during_calls" in typed}
    elif tab == "voicemail":
        out["vm"] = {name: typed.get(name, "") for name in out["vm"]}
    return out


def _text(value: object) -> str:
    return "" if value is None else str(value)

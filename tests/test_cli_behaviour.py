"""`ext show`'s last line as a table: stored settings in, one sentence out (no Redis).

The sentence is read back from the very Route a call gets, so each row also pins how
the decision is explained: forwarding always or on conditions, per-device keypress,
delay and ring time, externals during calls, caller-ID modes and hops.
"""

from __future__ import annotations

import json

import pytest

from agi.admin.views import behaviour
from agi.config import Config
from agi.routing import decide

MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
COMPANY_NUMBER = "+33142685300"
OTHER_DID = "+33142685302"
COMPANY = {"caller_id": COMPANY_NUMBER, "did:" + OTHER_DID: "1002"}
DESK = '["PJSIP/1001"]'
VOICEMAIL = "unanswered calls go to voicemail 1001@default."


def forward(target: str = MOBILE, **extra: str) -> dict[str, str]:
    return {"devices": DESK, "forward_enabled": "1", "forward_target": target, **extra}


def externals(*entries: object) -> str:
    return json.dumps(list(entries))


CASES = [
    ("ring-desk", {"devices": DESK}, {}, f"Calls ring PJSIP/1001; {VOICEMAIL}"),
    ("voicemail-only", {"devices": "[]"}, {},
     "Nothing rings: calls go straight to voicemail 1001@default."),
    ("forward-always-original", forward(), COMPANY,
     f"Calls ring only {MOBILE}, showing the caller's number; {VOICEMAIL}"),
    ("forward-always-company-keypress",
     forward(forward_caller_id="company", forward_require_keypress="1"), COMPANY,
     f"Calls ring only {MOBILE} (press 1), showing {COMPANY_NUMBER}; {VOICEMAIL}"),
    ("forward-original-fallback", forward(forward_caller_id="original-fallback"), COMPANY,
     f"Calls ring only {MOBILE}, showing the caller's number ({COMPANY_NUMBER} if the "
     f"carrier refuses it); {VOICEMAIL}"),
    ("forward-original-fallback-no-company-number",
     forward(forward_caller_id="original-fallback"), {},
     f"Calls ring only {MOBILE}, showing the caller's number; {VOICEMAIL}"),
    ("forward-hop", forward(OTHER_DID), COMPANY,
     f"Calls follow extension 1002's rules; {VOICEMAIL}"),
    ("when-noanswer", forward(forward_when="noanswer", forward_after="25"), {},
     f"Calls ring PJSIP/1001 for 25 s, then {MOBILE} if nobody answers; {VOICEMAIL}"),
    ("when-busy-noanswer", forward(forward_when="busy,noanswer"), {},
     f"Calls ring PJSIP/1001 for 20 s, then {MOBILE} if nobody answers or the phones are "
     f"busy; {VOICEMAIL}"),
    ("when-offline-busy", forward(forward_when="offline,busy"), {},
     f"Calls ring PJSIP/1001, then {MOBILE} if the phones are busy or no phone is "
     f"reachable; {VOICEMAIL}"),
    ("when-all-three", forward(forward_when="offline,busy,noanswer"), {},
     f"Calls ring PJSIP/1001 for 20 s, then {MOBILE} if nobody answers, the phones are busy "
     f"or no phone is reachable; {VOICEMAIL}"),
    ("when-with-nothing-to-ring-first", {**forward(forward_when="busy"), "devices": "[]"}, {},
     f"Calls ring only {MOBILE}, showing the caller's number; {VOICEMAIL}"),
    ("when-hop", forward(OTHER_DID, forward_when="busy"), COMPANY,
     f"Calls ring PJSIP/1001, then extension 1002's rules if the phones are busy; "
     f"{VOICEMAIL}"),
    ("brief-example",
     forward(forward_when="busy,noanswer", external_devices=externals(
         {"number": MOBILE_2, "require_keypress": True, "delay": 5})), {},
     f"Calls ring PJSIP/1001 and {MOBILE_2} (press 1, after 5 s) for 20 s, then {MOBILE} "
     f"if nobody answers or the phones are busy; {VOICEMAIL}"),
    ("device-ring-time", {"devices": DESK, "external_devices": externals(
        {"number": MOBILE_2, "ring": 15})}, {},
     f"Calls ring PJSIP/1001 and {MOBILE_2} (for 15 s); {VOICEMAIL}"),
    ("device-keypress-from-the-extension",
     {"devices": DESK, "forward_require_keypress": "1",
      "external_devices": externals(MOBILE_2, {"number": MOBILE, "require_keypress": False})},
     {}, f"Calls ring PJSIP/1001, {MOBILE_2} (press 1) and {MOBILE}; {VOICEMAIL}"),
    ("device-company-caller-id",
     {"devices": DESK, "forward_caller_id": "company",
      "external_devices": externals(MOBILE_2)}, COMPANY,
     f"Calls ring PJSIP/1001 and {MOBILE_2}, showing {COMPANY_NUMBER}; {VOICEMAIL}"),
    ("device-hop-only", {"devices": DESK, "forward_caller_id": "company",
                         "external_devices": externals(OTHER_DID)}, COMPANY,
     f"Calls ring PJSIP/1001 and extension 1002's rules; {VOICEMAIL}"),
    ("externals-quiet-during-calls",
     {"devices": DESK, "externals_during_calls": "0", "external_devices": externals(MOBILE_2)},
     {}, f"Calls ring PJSIP/1001 and {MOBILE_2} (only the desk phones while one is in use); "
         f"{VOICEMAIL}"),
    ("corrupt-target-falls-back", forward("+447911123456"), {},
     f"Calls ring PJSIP/1001; {VOICEMAIL}"),
]


@pytest.mark.parametrize(("fields", "company", "sentence"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_behaviour_sentence(fields: dict[str, str], company: dict[str, str], sentence: str,
                            fr_config: Config) -> None:
    assert behaviour(decide("1001", fields, company, fr_config)) == sentence

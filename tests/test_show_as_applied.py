"""`ext show` says what a call does: for every stored field, a corrupt value shows the
value the call path uses instead, and `corrupt` names it.

Each row plants one corrupt value in a real Redis (as a hand edit or a buggy tool
would), then reads it back twice: `callroute ext show --json` (the admin view) and
`decide` on the very same hashes (the call). The effective value must be the same in
both, and the `corrupt` entry must give the stored value and the value used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import redis

from agi.config import Config
from agi.routing import Route, decide

if TYPE_CHECKING:
    from tests.conftest import CliResult

pytestmark = pytest.mark.redis

KEY = "callroute:ext:1001"
COMPANY_KEY = "callroute:company"
MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
COMPANY_NUMBER = "+33142685300"
DESK = '["PJSIP/1001"]'
FORWARD = {"devices": DESK, "forward_enabled": "1", "forward_target": MOBILE}
RING = {"devices": DESK, "external_devices": json.dumps([MOBILE_2])}
COMPANY = {"caller_id": COMPANY_NUMBER}


def legs(route: Route) -> list[str]:
    return [leg.number or leg.device for leg in route.legs]


# (field, corrupt value, the other fields, company hash, value used,
#  that value as the view shows it, that value as the call applies it)
ROWS: list[tuple[str, str, dict, dict, object, Callable[[dict], object],
                 Callable[[Route], object]]] = [
    ("devices", '["PJSIP/1001&PJSIP/itsp/0088"]', {}, {}, ["PJSIP/1001"],
     lambda view: view["devices"], legs),
    ("devices", "PJSIP/1001", {}, {}, ["PJSIP/1001"], lambda view: view["devices"], legs),
    ("forward_enabled", "yes", {"devices": DESK, "forward_target": MOBILE}, {}, False,
     lambda view: view["forward"]["enabled"], lambda route: route.forwarding),
    ("forward_require_keypress", "yes", FORWARD, {}, True,
     lambda view: view["forward"]["require_keypress"], lambda route: route.confirm),
    ("externals_during_calls", "maybe", RING, {}, True,
     lambda view: view["externals_during_calls"], lambda route: not route.desks),
    ("forward_caller_id", "boss", FORWARD, COMPANY, "original",
     lambda view: view["forward"]["caller_id"],
     lambda route: "original" if not (route.callerid or route.callerid_retry) else "other"),
    ("forward_when", "sometimes", FORWARD, {}, "noanswer",
     lambda view: view["forward"]["when"],
     lambda route: {"NOANSWER": "noanswer"}.get(route.next_on)),
    ("forward_after", "4", {**FORWARD, "forward_when": "noanswer"}, {}, 20,
     lambda view: view["forward"]["after"], lambda route: int(route.ringtime)),
    ("confirm_tries", "0", FORWARD, {}, None, lambda view: view["confirm"]["tries"],
     lambda route: route.ask_tries or None),
    ("confirm_timeout", "31", FORWARD, {}, None, lambda view: view["confirm"]["timeout"],
     lambda route: route.ask_timeout or None),
    ("confirm_prompt", "../../etc/passwd", FORWARD, {}, None,
     lambda view: view["confirm"]["prompt"], lambda route: route.ask_prompt or None),
    ("mailbox", 'x"\nEXEC Dial', {"devices": DESK}, {}, "1001@default",
     lambda view: view["mailbox"], lambda route: route.mailbox),
    ("did", "+447911123456", FORWARD, {}, "", lambda view: view["did"],
     lambda route: route.diversion),
    ("external_devices", json.dumps([{"number": MOBILE_2, "delay": "soon"}, MOBILE]),
     {"devices": DESK}, {}, [MOBILE],
     lambda view: [d["number"] for d in view["external_devices"]],
     lambda route: legs(route)[1:]),
    ("external_devices", json.dumps(["+447911123456"]), {"devices": DESK}, {}, [],
     lambda view: [d["number"] for d in view["external_devices"]],
     lambda route: legs(route)[1:]),
    ("forward_target", "+447911123456", FORWARD, {}, "",
     lambda view: view["forward"]["target"], lambda route: route.target),
    ("forward_target", COMPANY_NUMBER, FORWARD, COMPANY, "",
     lambda view: view["forward"]["target"], lambda route: route.target),
    ("company caller_id", "+3315", FORWARD, {}, "",
     lambda view: "", lambda route: route.diversion),
]


@pytest.mark.parametrize(("field", "value", "others", "company", "used", "shown", "applied"),
                         ROWS, ids=[f"{row[0]}={row[1][:30]!r}" for row in ROWS])
def test_corrupt_value_shows_what_the_call_uses(
        field: str, value: str, others: dict, company: dict, used: object,
        shown: Callable[[dict], object], applied: Callable[[Route], object],
        run_cli: Callable[..., CliResult], redis_client: redis.Redis,
        fr_config: Config) -> None:
    if field == "company caller_id":
        company = {**company, "caller_id": value}
        fields = dict(others)
    else:
        fields = {**others, field: value}
    redis_client.hset(KEY, mapping=fields)
    redis_client.sadd("callroute:extensions", "1001")
    if company:
        redis_client.hset(COMPANY_KEY, mapping=company)
    result = run_cli("ext", "show", "1001", "--json")
    assert (result.code, result.err) == (0, "")
    view = json.loads(result.out)
    route = decide("1001", redis_client.hgetall(KEY), redis_client.hgetall(COMPANY_KEY),
                   fr_config)
    assert route.status == view["status"] == "FALLBACK"
    assert applied(route) == used
    if field != "company caller_id":
        assert shown(view) == used
    assert {"field": field, "stored": value, "used": used} in view["corrupt"]
    assert view["behaviour"].startswith("Calls ring" if route.mode != "VOICEMAIL" else "No")


def test_valid_data_has_nothing_corrupt(run_cli: Callable[..., CliResult]) -> None:
    assert run_cli("ext", "add", "1001").code == 0
    assert run_cli("forward", "on", "1001", "0612345678", "--require-keypress").code == 0
    view = json.loads(run_cli("ext", "show", "1001", "--json").out)
    assert (view["status"], view["corrupt"]) == ("OK", [])


def test_a_malformed_target_is_named_even_while_forwarding_is_off(
        run_cli: Callable[..., CliResult], redis_client: redis.Redis) -> None:
    """The call ignores the target while off (status OK), but the admin is told."""
    redis_client.hset(KEY, mapping={"devices": DESK, "forward_enabled": "0",
                                    "forward_target": "+33612345678&PJSIP/x"})
    view = json.loads(run_cli("ext", "show", "1001", "--json").out)
    assert view["status"] == "OK"
    assert view["forward"]["target"] == ""
    assert view["corrupt"] == [{"field": "forward_target", "stored": "+33612345678&PJSIP/x",
                                "used": ""}]


def test_text_names_each_ignored_value(run_cli: Callable[..., CliResult],
                                       redis_client: redis.Redis) -> None:
    redis_client.hset(KEY, mapping={**FORWARD, "forward_require_keypress": "yes",
                                    "mailbox": "nobody"})
    lines = run_cli("ext", "show", "1001").out.splitlines()
    assert "  forwarding:       on -> +33612345678 (caller ID original, keypress required)" \
        in lines
    assert "  mailbox:          1001@default" in lines
    assert [line for line in lines if line.startswith("  ignored:")] == [
        '  ignored:          forward_require_keypress = "yes", using true',
        '  ignored:          mailbox = "nobody", using "1001@default"']

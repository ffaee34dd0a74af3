"""`scripts/testpbx demo`: every callroute behaviour as a real call, shown as a table.

Each row is one SIPp call through the real test PBX, set up with the real CLI (or
with data planted in Redis), and observed the same way the end-to-end tests observe
it (tests/harness/calls.py). The "as expected" column is computed, not asserted, so
the demo always prints the whole table.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agi.admin import Actor
from tests.harness.calls import (
    CALLER_NUMBER,
    VOICEMAIL_HOLD_MS,
    Callee,
    CallResult,
    carrier,
    desk,
    place_call,
)
from tests.harness.pbx import SIP_HOST, SIP_PORT, TestPBX

TARGET = "+33612345678"
MOBILE = "+33698765432"


@dataclass
class Step:
    title: str
    setup: Callable[[TestPBX], None]
    callees: list[Callee]
    expect: Callable[[CallResult], bool]
    hold_ms: int = 3000
    after: Callable[[TestPBX], None] | None = None


def _cli(*commands: tuple[str, ...]) -> Callable[[TestPBX], None]:
    def run(pbx: TestPBX) -> None:
        for command in commands:
            proc = pbx.cli(*command)
            if proc.returncode != 0:
                raise RuntimeError(f"callroute {' '.join(command)}: {proc.stderr.strip()}")
    return run


def _plant_target(value: str) -> Callable[[TestPBX], None]:
    """Write a forward target straight into Redis, bypassing the CLI's checks."""
    def run(pbx: TestPBX) -> None:
        import redis

        client = redis.Redis.from_url(pbx.redis_url or "")
        client.hset("callroute:ext:1001", mapping={"forward_enabled": "1",
                                                   "forward_target": value})
        client.close()
    return run


STEPS = [
    Step("Forwarding off: desk phone + external device",
         _cli(("device", "add", "1001", MOBILE)),
         [desk("1001", answer_delay_ms="1500"), carrier("uas_ring_noanswer")],
         lambda r: r.rang("desk 1001") and r.carrier_numbers() == [MOBILE]
         and r.connected_to("desk 1001")),
    Step("Forwarding on: only the target rings",
         _cli(("forward", "on", "1001", TARGET)),
         [desk("1001"), carrier()],
         lambda r: r.carrier_numbers() == [TARGET] and not r.rang("desk 1001")
         and r.connected_to("carrier")),
    Step("Forwarding on, caller ID = company",
         _cli(("forward", "on", "1001", TARGET, "--caller-id", "company")),
         [desk("1001"), carrier()],
         lambda r: r.caller_id_at("carrier") == "+33100001000"),
    Step("Press 1 required: callee presses 1",
         _cli(("forward", "on", "1001", TARGET, "--require-keypress")),
         [carrier("uas_answer_press", digit="1", press_after_ms="1500")],
         lambda r: r.connected_to("carrier")),
    Step("Press 1 required: mobile voicemail answers",
         _cli(("forward", "on", "1001", TARGET, "--require-keypress")),
         [carrier("uas_answer_silent")],
         lambda r: r.callees["carrier"].got_bye() and r.voicemail_left(),
         hold_ms=VOICEMAIL_HOLD_MS),
    Step("Press 1 required: callee presses 2",
         _cli(("forward", "on", "1001", TARGET, "--require-keypress")),
         [carrier("uas_answer_press", digit="2", press_after_ms="1500")],
         lambda r: r.voicemail_left(), hold_ms=VOICEMAIL_HOLD_MS),
    Step("Forward target busy",
         _cli(("forward", "on", "1001", TARGET)),
         [carrier("uas_busy")],
         lambda r: r.voicemail_left() and r.voicemail_greeting == "busy",
         hold_ms=VOICEMAIL_HOLD_MS),
    Step("Ring all; silent mobile needs 1; desk answers after 8 s",
         _cli(("forward", "on", "1001", TARGET, "--require-keypress"),
              ("forward", "off", "1001"), ("device", "add", "1001", MOBILE)),
         [desk("1001", answer_delay_ms="8000"), carrier("uas_answer_silent")],
         lambda r: r.connected_to("desk 1001") and r.callees["carrier"].got_bye()),
    Step("International target planted in Redis",
         _plant_target("+447911123456"),
         [desk("1001"), carrier()],
         lambda r: r.rang("desk 1001") and not r.rang("carrier")),
    Step("Redis stopped (FALLBACK)",
         lambda pbx: (_cli(("forward", "on", "1001", TARGET))(pbx), pbx.stop_redis()),
         [desk("1001"), carrier()],
         lambda r: r.connected_to("desk 1001") and not r.rang("carrier"),
         after=lambda pbx: pbx.start_redis()),
]


def _row(step: Step, result: CallResult) -> list[str]:
    rang = [name for name in result.callees if result.rang(name)]
    rang_text = ", ".join(
        f"carrier {' '.join(result.carrier_numbers())}" if name == "carrier" else name
        for name in rang) or "nothing"
    shown = next((result.caller_id_at(name) for name in rang if result.caller_id_at(name)),
                 None) or "-"
    external = "carrier" in rang and any(
        c.scenario.startswith("uas_answer") for c in step.callees if c.name == "carrier")
    confirmed = "-" if not external else (
        "yes" if result.connected_to("carrier") else "no")
    voicemail = f"yes ({result.voicemail_greeting})" if result.voicemail_left() else "no"
    # The languages Asterisk played prompts in (it logs each file with its channel's).
    spoken = sorted(set(re.findall(r"Playing '[^']+' \(language '([^']+)'\)", result.log)))
    return [step.title, rang_text, shown, confirmed, voicemail, ", ".join(spoken) or "-",
            "yes" if step.expect(result) else "NO"]


def _print_table(rows: list[list[str]]) -> None:
    header = ["scenario", "phones that rang", "caller ID shown", "confirmed",
              "voicemail left", "prompts in", "as expected"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)


def run_demo(pbx: TestPBX, agi_mode: str, language: str | None = None) -> int:
    """`language`: the company's (callroute company set --language) for every call."""
    status = pbx.up(agi_mode=agi_mode)
    spoken = f", company language {language}" if language else ""
    print(f"\ncallroute demo: real calls through Asterisk 22 ({status['agi']} agent), "
          f"caller {CALLER_NUMBER}, extension 1001{spoken}\n", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="callroute-demo-") as tmp:
        for number, step in enumerate(STEPS, 1):
            print(f"[{number}/{len(STEPS)}] {step.title} ...", file=sys.stderr, flush=True)
            pbx.reset()
            if language:
                _cli(("company", "set", "--language", language))(pbx)
            step.setup(pbx)
            try:
                result = place_call(pbx, Path(tmp) / f"step{number}", "1001", step.callees,
                                    hold_ms=step.hold_ms)
            finally:
                if step.after:
                    step.after(pbx)
            rows.append(_row(step, result))
    pbx.reset()
    _print_table(rows)
    env = pbx.callroute_env()
    print(f"""
The test PBX is still running (stop it with: scripts/testpbx down).

Call it from any SIP softphone on this machine (UDP, no registration needed):
  - dial sip:1001@{SIP_HOST}:{SIP_PORT} (or 1002, 1003) from 127.0.0.1: that is an
    inbound call, routed by callroute;
  - to *be* desk phone 1001, run the softphone on {SIP_HOST}:5071 (1002: 5072, 1003: 5073);
    external numbers are dialled to the carrier at {SIP_HOST}:5080.

Change the settings with the CLI, then call again:
  export CALLROUTE_REDIS_URL={env['CALLROUTE_REDIS_URL']} CALLROUTE_COUNTRY=FR
  .venv/bin/callroute forward on 1001 0612345678 --require-keypress
  .venv/bin/callroute ext show 1001
  .venv/bin/callroute forward off 1001
{_office_manager(pbx, status["web"])}""")
    return 0 if all(row[-1] == "yes" for row in rows) else 1


def _office_manager(pbx: TestPBX, url: str) -> str:
    """How to log in to callroute-web: a fresh `admin` account whose generated password
    is shown here once (the store keeps only its argon2id hash)."""
    from agi.accounts import Accounts, generate_password
    from agi.config import load
    from agi.store import AdminStore

    store = AdminStore(load({**pbx.callroute_env(), "CALLROUTE_CONFIG": os.devnull}))
    try:
        accounts = Accounts(store)
        password = generate_password()
        if accounts.get_user("admin") is None:
            accounts.add_user("admin", "admin", [], password, actor=Actor("cli:demo"))
        else:  # from an earlier demo: a new password ends its old sessions
            accounts.set_password("admin", password, actor=Actor("cli:demo"))
    finally:
        store.close()
    return (f"The Office Manager and the HTTP API (callroute-web) are at {url}:\n"
            f"  log in as admin, password {password} (shown once; change it with\n"
            f"  .venv/bin/callroute user passwd admin --password-stdin)\n"
            f"  curl -u admin:{password} -X POST {url}/api/v1/tokens   # an API token\n")

"""callroute doctor's pure verdicts (agi/doctor_checks.py): data in, findings out.

The Redis-backed and PBX-backed behaviour is in tests/test_doctor.py and
tests/e2e/test_doctor.py; these pin what the sentences and levels depend on when the
data is already gathered: Asterisk's console text, the dialplan file, the summary.
"""

from __future__ import annotations

import re
from pathlib import Path

from agi import doctor
from agi import doctor_checks as dc

ROOT = Path(__file__).resolve().parents[1]
DIALPLAN = "\n".join(f"[ Context '{ctx}' created by 'pbx_config' ]\n  's' => 1. NoOp()"
                     for ctx in dc.CONTEXTS)
GLOBALS = ("   CALLROUTE_CONFIRM_TRIES=3\n   CALLROUTE_AGI=agi://127.0.0.1:4573/route\n"
           "\n    -- 2 variable(s)\n")
VOICEMAIL = ("Context    Mbox  User                      Zone       NewMsg\n"
             "default    1001  Ext 1001                                  0\n"
             "office     1002  Ext 1002 (office)                         0\n"
             "2 voicemail users configured.\n")


def outputs(**changes: str) -> dict[str, str]:
    found = {dc.RX_DIALPLAN: DIALPLAN, dc.RX_GLOBALS: GLOBALS, dc.RX_VOICEMAIL: VOICEMAIL}
    found.update({getattr(dc, key): value for key, value in changes.items()})
    return found


def test_contexts_are_those_the_dialplan_file_defines() -> None:
    text = (ROOT / "dialplan" / "callroute.conf").read_text()
    assert set(dc.CONTEXTS) == set(re.findall(r"^\[(callroute-[\w-]+)\]", text, re.M))


def test_a_healthy_console_is_three_oks() -> None:
    found = dc.asterisk("asterisk", outputs(), "", {"1001@default": ["1001"],
                                                    "1002@office": ["1002"]})
    assert [f.level for f in found] == [dc.OK] * 3
    assert found[1].data == {"value": "agi://127.0.0.1:4573/route"}


def test_a_missing_context_global_and_mailbox_are_each_named() -> None:
    dialplan = DIALPLAN.replace("'callroute-hop'", "'other'")
    found = dc.asterisk("asterisk", outputs(RX_DIALPLAN=dialplan,
                                            RX_GLOBALS="    -- 0 variable(s)\n"),
                        "", {"1003@default": ["1003", "1004"], "1001@default": ["1001"]})
    problems = [(f.check, f.ext, f.field) for f in found if f.level == dc.PROBLEM]
    assert problems == [(dc.ASTERISK, "", ""), (dc.ASTERISK, "", dc.AGI_GLOBAL),
                        (dc.ASTERISK, "1003", "mailbox"), (dc.ASTERISK, "1004", "mailbox")]
    assert "callroute-hop" in found[0].sentence
    # The header and the count line are not mailboxes.
    assert dc._mailboxes(VOICEMAIL) == {"1001@default", "1002@office"}


def test_a_console_failure_is_one_problem() -> None:
    found = dc.asterisk("asterisk -C x", {}, "'dialplan show' exited with status 1", {})
    assert [(f.level, f.check) for f in found] == [(dc.PROBLEM, dc.ASTERISK)]
    assert "'asterisk -C x -rx'" in found[0].sentence


def test_the_summary_counts_problems_and_warnings() -> None:
    ok = dc.Finding(dc.OK, dc.REDIS, "fine")
    warn = dc.Finding(dc.WARN, dc.SCHEMA, "hm")
    problem = dc.Finding(dc.PROBLEM, dc.EXTENSION, "no")
    assert doctor._summary([ok]) == "Everything is fine."
    assert doctor._summary([ok, warn, problem, problem]) == \
        "2 problems and 1 warning: see above."
    assert doctor._summary([warn, warn]) == "2 warnings: see above."


def test_a_slow_redis_is_a_warning_against_the_call_timeout() -> None:
    fast = dc.redis("redis://:pw@h:1/0", dc.RedisFacts(0.001, "7.0.15", None), "", 300)
    slow = dc.redis("redis://:pw@h:1/0", dc.RedisFacts(0.2, "7.0.15", None), "", 300)
    assert [f.level for f in fast + slow] == [dc.OK, dc.WARN]
    assert "timeout_ms = 300 ms" in slow[0].sentence
    assert all("pw" not in f.sentence for f in fast + slow)

"""`callroute doctor --asterisk` against the real test PBX (Asterisk 22 in its rootfs).

Doctor asks the console through `asterisk -rx` (here: nsenter + chroot into the PBX's
namespace, as the harness does). It does not depend on the AGI mode: one mode is
enough, and FastAGI's lets the same run check the real server's health script.
"""

from __future__ import annotations

import json
import shlex

import pytest

from agi import doctor_checks as dc
from tests.harness.pbx import FASTAGI_HOST, FASTAGI_PORT, TestPBX

# FastAGI is the mode one_agi_mode runs in (tests/e2e/conftest.py ONE_MODE).
pytestmark = pytest.mark.one_agi_mode


def doctor(pbx: TestPBX, *args: str) -> tuple[int, dict, str]:
    """(exit status, the --json report, the text output), both runs agreeing."""
    argv = ["doctor", "--fastagi", f"{FASTAGI_HOST}:{FASTAGI_PORT}", "--asterisk",
            "--asterisk-cmd", shlex.join(pbx.console_command()), *args]
    text = pbx.cli(*argv)
    raw = pbx.cli(*argv, "--json")
    assert (text.returncode, text.stderr, raw.stderr) == (raw.returncode, "", "")
    return raw.returncode, json.loads(raw.stdout), text.stdout


def test_the_seeded_pbx_is_healthy(pbx: TestPBX, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, text = doctor(pbx)
    with capsys.disabled():  # the example in docs/cli.md
        print(f"\ncallroute doctor on the seeded test PBX:\n{text}")
    assert code == 0, text
    found = [f for f in report["findings"] if f["check"] == dc.ASTERISK]
    assert [f["level"] for f in found] == [dc.OK] * 3, found
    assert found[1]["data"]["value"] == f"agi://{FASTAGI_HOST}:{FASTAGI_PORT}/route"
    assert {f["check"] for f in report["findings"]} >= {dc.REDIS, dc.EXTENSION, dc.FASTAGI}
    assert "Every mailbox the extensions use (3) exists." in text


def test_a_mailbox_missing_from_voicemail_conf_is_named(pbx: TestPBX, cli) -> None:
    cli("ext", "add", "1002", "--mailbox", "1099@default")
    code, report, text = doctor(pbx)
    assert code == 1, text
    found = [f for f in report["findings"] if f["level"] != dc.OK]
    assert [(f["check"], f["ext"], f["field"], f["data"]) for f in found] == [
        (dc.ASTERISK, "1002", "mailbox", {"mailbox": "1099@default"})], found
    assert "Extension 1002's mailbox 1099@default does not exist" in text


def test_a_console_that_does_not_answer(pbx: TestPBX) -> None:
    code, report, _ = doctor(pbx, "--asterisk-cmd", "asterisk-not-installed-here")
    assert code == 1
    found = [f for f in report["findings"] if f["level"] != dc.OK]
    assert [f["check"] for f in found] == [dc.ASTERISK], found
    assert "'asterisk-not-installed-here' is not found" in found[0]["sentence"]

"""Default mailboxes on the real PBX: they follow the agent's CALLROUTE_VOICEMAIL_CONTEXT.

The test PBX's agent (both AGI modes) is configured with the context `office`
(tests/harness/pbx.py), and docker/asterisk/voicemail.conf has the boxes 1001-1003 in
`office` as well as in `default`. The seeded extensions store `100N@default`; every
mailbox the agent makes up itself must be in `office`, or the caller hears "nobody
available" and no message is kept. The desk phone answers busy, so voicemail picks up
at once (busy greeting).
"""

from __future__ import annotations

import pytest

from tests.harness.calls import VOICEMAIL_HOLD_MS, desk
from tests.harness.pbx import CALLROUTE_SETTINGS

CONTEXT = CALLROUTE_SETTINGS["CALLROUTE_VOICEMAIL_CONTEXT"]


def test_the_test_pbx_uses_a_context_other_than_default() -> None:
    assert CONTEXT != "default"


def leave_message(call, ext: str):
    result = call(ext, [desk(ext, "uas_busy")], hold_ms=VOICEMAIL_HOLD_MS,
                  mailbox=f"{ext}@{CONTEXT}")
    assert result.rang(f"desk {ext}"), result.describe()
    assert result.voicemail_greeting == "busy", result.describe()
    assert result.voicemail_left(), result.describe()
    assert f'"{ext}@{CONTEXT},' in result.log, result.describe()
    return result


def test_fallback_with_redis_stopped_leaves_the_message_in_the_context(pbx, call) -> None:
    pbx.stop_redis()
    result = leave_message(call, "1003")
    assert "callroute: ext '1003': FALLBACK" in result.log, result.describe()


@pytest.mark.parametrize("how", ["no-stored-mailbox", "unknown-extension"])
def test_a_mailbox_the_agent_makes_up_is_in_the_context(how: str, store, call) -> None:
    if how == "no-stored-mailbox":  # as written by a hand or an older admin tool
        assert store.hdel("callroute:ext:1002", "mailbox") == 1
    else:
        store.delete("callroute:ext:1002")
    leave_message(call, "1002")

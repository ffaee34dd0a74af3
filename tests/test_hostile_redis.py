"""A Redis (or a proxy in front of it) that answers with nonsense: every call still ends
in FALLBACK, within its deadline, with one log line and no traceback.

The hostile server is a real TCP server on 127.0.0.1 that answers every connection with
a fixed reply (or drips it a byte at a time). Each reply goes through the reader on its
own, for a plain and a Sentinel URL, then through both real entry points: the
`callroute-agi` process under the fake Asterisk, and the FastAGI server.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from agi import resp
from agi import variables as v
from agi.resp import MAX_REPLY_BYTES, RespError
from tests.asterisk_parser import variables
from tests.fake_asterisk import FakeAsterisk, agi_session

DEADLINE_S = 0.300  # the agent's timeout_ms in both fixtures
# Python's start and imports come before the deadline starts in process AGI; on a busy
# 2-core machine they may take a second. A hang would last the fake Asterisk's 10 s.
PROCESS_SLACK_S = 1.5
FASTAGI_SLACK_S = 0.5
DRIP_INTERVAL_S = 0.02
VALID_HASH = b'*2\r\n$7\r\ndevices\r\n$14\r\n["PJSIP/1001"]\r\n'


@dataclass(frozen=True)
class Hostile:
    reply: bytes
    reason: str  # what CALLROUTE_REASON must hold
    drip: bool = False


NOT_A_STRING = "unreadable reply (a hash field or value that is not a string)"
HOSTILE = {
    "deep-nesting": Hostile(b"*1\r\n" * 100_000,
                            "unreadable reply (arrays nested deeper than 2)"),
    "huge-bulk-length": Hostile(b"*2\r\n$2147483647\r\nabc",
                                "unreadable reply (bulk length 2147483647 over the limit"),
    "huge-array-count": Hostile(b"*2147483647\r\n$1\r\na\r\n",
                                "unreadable reply (array length 2147483647 over the limit"),
    "negative-array-count": Hostile(b"*-5\r\n", "unreadable reply (negative array length)"),
    "negative-bulk-length": Hostile(b"*2\r\n$-7\r\n",
                                    "unreadable reply (negative bulk length)"),
    "garbage-type-byte": Hostile(b"?\x00\xff garbage\r\n",
                                 "unreadable reply (unknown reply type)"),
    "non-numeric-count": Hostile(b"*not-a-number\r\n",
                                 "unreadable reply (non-numeric array length)"),
    # int() would read these three as 10, 1 and 2.
    "underscore-count": Hostile(b"*1_0\r\n", "unreadable reply (non-numeric array length)"),
    "spaced-bulk-length": Hostile(b"*2\r\n$ 1\r\na\r\n",
                                  "unreadable reply (non-numeric bulk length)"),
    "plus-count": Hostile(b"*+2\r\n", "unreadable reply (non-numeric array length)"),
    "odd-length-hash": Hostile(b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
                               "unreadable reply (odd number of elements for a hash)"),
    "nil-value": Hostile(b"*2\r\n$7\r\ndevices\r\n$-1\r\n", NOT_A_STRING),
    "array-as-field": Hostile(b"*2\r\n*0\r\n$1\r\na\r\n", NOT_A_STRING),
    "integer-value": Hostile(b"*2\r\n$7\r\ndevices\r\n:1\r\n", NOT_A_STRING),
    "bulk-longer-than-said": Hostile(b"*2\r\n$1\r\nabc\r\n$1\r\na\r\n",
                                     "unreadable reply (bulk string longer than its length)"),
    "endless-line": Hostile(b"+" + b"x" * (2 * MAX_REPLY_BYTES),
                            f"unreadable reply (more than {MAX_REPLY_BYTES} bytes)"),
    "slow-drip": Hostile(VALID_HASH * 2, "did not answer before the deadline", drip=True),
}
IDS = list(HOSTILE)


class HostileRedis:
    """Answers every connection with `hostile.reply`, whatever it is asked, then reads and
    ignores until the client leaves. Stopped (and every connection closed) by close()."""

    def __init__(self, hostile: Hostile):
        self.hostile = hostile
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                conn.recv(65536)
                if self.hostile.drip:
                    for byte in self.hostile.reply:
                        if self.stopping.wait(DRIP_INTERVAL_S):
                            return
                        conn.sendall(bytes([byte]))
                else:
                    conn.sendall(self.hostile.reply)
                while conn.recv(65536):
                    pass
            except OSError:
                pass  # the client gave up on us: what it should do

    def close(self) -> None:
        self.stopping.set()
        self.server.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture(params=IDS)
def hostile(request: pytest.FixtureRequest) -> Iterator[HostileRedis]:
    server = HostileRedis(HOSTILE[request.param])
    try:
        yield server
    finally:
        server.close()


# ---- the reader itself: RespError and nothing else -----------------------------------------

def test_the_reader_raises_only_resp_error(hostile: HostileRedis) -> None:
    started = time.monotonic()
    with pytest.raises(RespError, match=re.escape(hostile.hostile.reason)):
        resp.hgetall_many(hostile.url, ["callroute:ext:1001", "callroute:company"],
                          started + DEADLINE_S)
    assert time.monotonic() - started < DEADLINE_S + FASTAGI_SLACK_S


def test_a_hostile_sentinel_is_skipped(hostile: HostileRedis) -> None:
    url = f"redis+sentinel://127.0.0.1:{hostile.port}/callroute"
    with pytest.raises(RespError, match="no sentinel answered for service 'callroute'"):
        resp.hgetall_many(url, ["callroute:ext:1001"], time.monotonic() + DEADLINE_S)


# ---- through the real entry points -----------------------------------------------------

def test_process_agi_falls_back(hostile: HostileRedis,
                                fake_asterisk: Callable[..., FakeAsterisk]) -> None:
    run = fake_asterisk(redis_url=hostile.url, timeout_ms=int(DEADLINE_S * 1000)).run("1001")
    assert not run.timed_out
    assert (run.returncode, run.stderr) == (0, ""), run.stderr  # no traceback, no noise
    found = run.variables()
    assert (found[v.STATUS], found[v.DIAL]) == (v.STATUS_FALLBACK, "PJSIP/1001")
    assert found[v.REASON].startswith("store: Redis ")
    assert hostile.hostile.reason in found[v.REASON]
    assert run.verbs().count("VERBOSE") == 1
    assert run.status_at is not None and run.status_at < DEADLINE_S + PROCESS_SLACK_S


def test_fastagi_falls_back(hostile: HostileRedis, serve,
                            caplog: pytest.LogCaptureFixture) -> None:
    server = serve(hostile.url)
    started = time.monotonic()
    commands = agi_session(server.address[1])
    elapsed = time.monotonic() - started
    found = variables(commands)
    assert (found[v.STATUS], found[v.DIAL]) == (v.STATUS_FALLBACK, "PJSIP/1001")
    assert hostile.hostile.reason in found[v.REASON]
    assert elapsed < DEADLINE_S + FASTAGI_SLACK_S
    assert not any(record.exc_info for record in caplog.records)
    assert "Traceback" not in caplog.text and "session failed" not in caplog.text
    outage = [r for r in caplog.records if r.name == "callroute.fastagi"
              and r.levelname == "WARNING"]
    assert len(outage) == 1 and hostile.hostile.reason in outage[0].getMessage()


# ---- the bounds leave room for real data ---------------------------------------------------

@pytest.mark.redis
def test_a_company_with_thousands_of_dids_still_routes(
        redis_client: redis.Redis, fake_asterisk: Callable[..., FakeAsterisk]) -> None:
    redis_client.hset("callroute:ext:1001", mapping={"devices": '["PJSIP/1001"]'})
    redis_client.hset("callroute:company", mapping={
        "caller_id": "+33100001000",
        **{f"did:+331{n:08d}": str(10_000 + n) for n in range(5_000)}})
    found = fake_asterisk(timeout_ms=2000).run("1001").variables()
    assert (found[v.STATUS], found[v.DIAL]) == (v.STATUS_OK, "PJSIP/1001")

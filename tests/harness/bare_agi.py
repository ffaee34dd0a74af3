"""The floor of any FastAGI agent on this machine: `python -m tests.harness.bare_agi`.

One thread and blocking sockets: accept a connection, read the environment up to its
blank line, read the two hashes of a decision from Redis (one pipelined round trip on
a kept connection, with the agent's own RESP reader), then send fixed command lines
and the end of our side, as callroute-fastagi ends a session (the agent's own answer
for the bench's extension, taken from it once by the harness). No decision, no
checks, no event loop: what such an agent adds to a call's post-dial delay is
Asterisk's side of AGI, the Redis round trip and the processes waking up, which no
agent can avoid. scripts/bench runs it beside callroute-fastagi (`bare` mode,
tests/harness/bench_pbx.py), so FastAGI's PDD reads against both floors of one run:
no AGI at all, and an AGI that does nothing.

Not a server to deploy: it trusts its peer and serves one call at a time.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

from agi import resp
from agi.resp import RedisTarget, RespError
from agi.schema import company_key, ext_key
from tests.harness.net import accepts
from tests.harness.procs import spawn, stop_popen, wait_until

ROOT = Path(__file__).resolve().parents[2]

END_OF_ENV = b"\n\n"
SESSION_TIMEOUT_S = 5.0
REDIS_TIMEOUT_S = 1.0


def read_env(conn: socket.socket) -> bool:
    """The environment, to its blank line; False if the peer closed first (the
    harness's readiness probe connects and closes)."""
    buf = b""
    while END_OF_ENV not in buf:
        data = conn.recv(4096)
        if not data:
            return False
        buf += data
    return True


class Redis:
    """One kept connection, opened again after a failure (as the agent's pool does)."""

    def __init__(self, url: str) -> None:
        self.target = RedisTarget(url)
        self.sock: socket.socket | None = None

    def hgetall_many(self, keys: list[str]) -> None:
        deadline = time.monotonic() + REDIS_TIMEOUT_S
        preamble: list[bytes] = []
        if self.sock is None:
            self.sock = resp._open(self.target, deadline)
            preamble = resp._preamble(self.target)
        try:
            resp._pipeline_hgetall(self.sock, preamble, keys, deadline)
        except RespError:
            self.sock.close()
            self.sock = None
            raise


def serve(listener: socket.socket, redis: Redis, keys: list[str], answer: bytes) -> None:
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(SESSION_TIMEOUT_S)
            try:
                if not read_env(conn):
                    continue
                redis.hgetall_many(keys)
                conn.sendall(answer)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(4096):  # Asterisk's replies, then its close
                    pass
            except (OSError, RespError) as exc:
                print(f"bare_agi: session failed: {exc}", file=sys.stderr, flush=True)


def start(port: int, redis_url: str, ext: str, lines: list[bytes],
          workdir: Path) -> subprocess.Popen:
    """This agent on 127.0.0.1:`port`, reading `ext`'s hashes (default prefix) and
    answering `lines` (without their newlines); returned once it accepts connections."""
    workdir.mkdir(parents=True, exist_ok=True)
    answer = workdir / "bare-answer"
    answer.write_bytes(b"".join(line + b"\n" for line in lines))
    proc = spawn([sys.executable, "-m", "tests.harness.bare_agi", "--port", str(port),
                  "--redis-url", redis_url, "--answer", answer,
                  ext_key("callroute:", ext), company_key("callroute:")],
                 workdir / "bare-agi.log", cwd=ROOT)
    try:
        wait_until(lambda: proc.poll() is None and accepts(port), 15,
                   f"bare FastAGI agent on {port}")
    except BaseException:
        stop_popen(proc)
        raise
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.bare_agi",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="on 127.0.0.1")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--answer", type=Path, required=True,
                        help="file with the command lines to send, as bytes")
    parser.add_argument("keys", nargs="+", help="the Redis hashes read per call")
    args = parser.parse_args(argv)
    answer = args.answer.read_bytes()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", args.port))
        listener.listen(64)
        serve(listener, Redis(args.redis_url), args.keys, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The decision's variable transport (one EXEC MSet, docs/dialplan-contract.md) on the
real Asterisk 22, in both AGI modes: every hostile value arrives exactly as sent
(minus control characters, which the agent never sends), under a plain name and
under an inherited `__` name, and no value can set a variable of its own.

The probe channel is `Local/600@from-phones` (answers and waits) with the AGI on its
other half: for FastAGI, this test's own server at agi://127.0.0.1:PORT/probe; for
process AGI, tests/e2e/transport_probe.py run by the rootfs Python.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path

from agi.protocol import AgiSession
from tests.e2e import transport_probe
from tests.harness.pbx import TestPBX
from tests.harness.procs import wait_until
from tests.harness.rootfs import MOUNT_POINT

HOSTILE = {
    "quote": 'say "hi"',
    "backslash": "a\\b\\",
    "comma": "+33612345678,1,U(evil)",
    "equals": "a=b=c",
    "dollar": "${CALLERID(num)}$[1+1]",
    "braces": "{number}}{",
    "newline": "line1\nEXEC Dial PJSIP/1002\r\n",
    "unicode": "Zo\u00e9 \u260e \uff16",
    "parens": "((unbalanced",
    "close-paren": "x)y))",
    "brackets": "[a]]b[",
    "pipe-semicolon": "a|b;c'd`e&f",
    "name-injection": 'x,CALLROUTE_EVIL=1,CALLROUTE_EVIL2="2"',
    "trailing-backslash": "end\\",
    "spaces": "  two  spaces  ",
    "long": ',\\"()[]=$' * 60,
}
EVIL = ["CALLROUTE_EVIL", "CALLROUTE_EVIL2"]


def expected(value: str) -> str:
    """What Asterisk must hold: the value minus control characters."""
    return "".join(ch for ch in value if ch.isprintable())


def pairs() -> list[tuple[str, str]]:
    """Each hostile value twice: as a plain variable, and as an inherited one (`__`
    prefix, as the agent sets what the external legs read)."""
    plain = [(f"CALLROUTE_T_{key.upper().replace('-', '_')}", value)
             for key, value in HOSTILE.items()]
    return plain + [(f"__{name}_INHERITED", value) for name, value in plain]


class _SocketSession(AgiSession):
    def __init__(self, conn: socket.socket) -> None:
        self._stream = conn.makefile("rwb")
        self.env = {}
        while (line := self._stream.readline().decode()) not in ("\n", ""):
            key, _, value = line.partition(":")
            self.env[key] = value.strip()

    def _send(self, command: str) -> None:
        self._stream.write(command.encode() + b"\n")
        self._stream.flush()

    def _readline(self) -> str:
        return self._stream.readline().decode("utf-8", "replace")


def _run_fastagi(pbx: TestPBX) -> dict:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(15)
    found: dict = {}

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            found.update(transport_probe.probe(_SocketSession(conn), pairs(), EVIL))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        pbx.asterisk_rx("channel originate Local/600@from-phones application AGI "
                        f"agi://127.0.0.1:{server.getsockname()[1]}/probe")
        thread.join(20)
    finally:
        server.close()
    return found


def _run_process(pbx: TestPBX) -> dict:
    run_dir = pbx.run_dir
    result = run_dir / transport_probe.RESULT_FILE
    result.unlink(missing_ok=True)
    (run_dir / transport_probe.VALUES_FILE).write_text(
        json.dumps({"pairs": pairs(), "extra": EVIL}))
    shutil.copy(Path(transport_probe.__file__), run_dir / "transport_probe.py")
    pbx.asterisk_rx("channel originate Local/600@from-phones application AGI "
                    f"/opt/callroute/bin/python,{MOUNT_POINT}/transport_probe.py,"
                    f"{MOUNT_POINT}")
    wait_until(result.exists, 20, "the process AGI probe to report")
    return json.loads(result.read_text())


def test_hostile_values_arrive_exactly_and_set_nothing_else(pbx: TestPBX) -> None:
    mode = pbx.status()["agi"]
    held = _run_fastagi(pbx) if mode == "fastagi" else _run_process(pbx)
    assert held, f"the {mode} probe never ran"
    for name, value in pairs():
        assert held[name] == expected(value), (name, held[name], value)
    for name in EVIL:
        assert held[name] is None, (name, held[name])
    wait_until(lambda: pbx.channel_count() == 0, 10, "the probe channel to hang up")

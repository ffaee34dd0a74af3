"""The test PBX: a real Asterisk 22 plus a private Redis, without Docker.

Asterisk runs from the Debian sid root filesystem of tests/harness/rootfs.py, in a
private mount namespace so that its mounts (/proc and the per-run directory) vanish
with it and are never visible on the host. Redis and callroute-fastagi run on the host.
Every process is recorded by PID (tests/harness/supervisor.py), so `down()` works from
another process and after a crash. The topology is fixed (docker/asterisk/); the demo
data comes from tests/harness/seeding.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.harness import rootfs as fs
from tests.harness.net import fastagi_healthy, start_fastagi
from tests.harness.procs import run, spawn, tcp_port_free, udp_port_free, wait_until
from tests.harness.redis_server import RedisServer
from tests.harness.seeding import CALLROUTE_SETTINGS, SeedSnapshot, run_cli, seed
from tests.harness.supervisor import Supervisor, is_ours
from tests.harness.web import WebServer

SIP_HOST, SIP_PORT = "127.0.0.1", 5060
AGI_MODES = ("fastagi", "process")
FASTAGI_HOST, FASTAGI_PORT = "127.0.0.1", 4573
WEB_HOST, WEB_PORT = "127.0.0.1", 8080  # callroute-web: the API (and the pages)
# What the dialplan global CALLROUTE_AGI is set to (via Asterisk's environment).
AGI_COMMANDS = {
    "process": "/opt/callroute/bin/callroute-agi",
    "fastagi": f"agi://{FASTAGI_HOST}:{FASTAGI_PORT}/route",
}
# ... and CALLROUTE_FEATURE_AGI, the feature-code agent.
FEATURE_AGI_COMMANDS = {
    "process": "/opt/callroute/bin/callroute-feature",
    "fastagi": f"agi://{FASTAGI_HOST}:{FASTAGI_PORT}/feature",
}
ASTERISK_CONF = f"{fs.MOUNT_POINT}/asterisk.conf"
REQUIRED_ENDPOINTS = ("1001", "1002", "1003", "carrier", "inbound")
# asterisk.conf directories that must be per run (everything else stays as packaged).
RUN_DIRS = {
    "astspooldir": "spool", "astrundir": "run", "astlogdir": "log",
    "astdbdir": "db", "astcachedir": "cache",
}
PROCESSES = ("asterisk", "redis", "fastagi", "web")


def active_channels(out: str) -> int:
    """The count in `core show channels count`'s output (the test PBX's and the compose
    stack's Asterisk alike); a RuntimeError if the output is not what Asterisk 22 says."""
    match = re.search(r"^(\d+) active channels?", out, re.M)
    if not match:
        raise RuntimeError(f"unexpected `core show channels count` output: {out!r}")
    return int(match.group(1))


class TestPBX:
    """One test PBX per checkout (SIP is always 127.0.0.1:5060), driven by PID files."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.home = self.root / ".cache" / "pbx"
        self.run_dir = self.home / "run"
        self.procs = Supervisor(self.home)
        self._seeded = SeedSnapshot()

    # ----- public API -------------------------------------------------------

    @property
    def spool(self) -> Path:
        """Host path of Asterisk's spool (voicemail lands in spool/voicemail/default/)."""
        return self.run_dir / "spool"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "log" / "messages"

    @property
    def redis_url(self) -> str | None:
        return ((self.procs.load() or {}).get("redis") or {}).get("url")

    @property
    def redis_port(self) -> int:
        """The port of the PBX's Redis (it keeps it across stop_redis/start_redis)."""
        return int((self.redis_url or "").rsplit(":", 1)[1].split("/")[0])

    def callroute_env(self) -> dict[str, str]:
        """Env vars for the host `.venv/bin/callroute` CLI against this PBX's Redis.

        Only the callroute variables: merge them over os.environ yourself.
        """
        url = self.redis_url
        if url is None:
            raise RuntimeError("the test PBX is not up (no Redis recorded)")
        return {"CALLROUTE_REDIS_URL": url, **CALLROUTE_SETTINGS}

    def up(self, agi_mode: str = "fastagi", seed: bool = True) -> dict[str, Any]:
        """Start the PBX, or do nothing if it already runs; returns status().

        A state left by a crash is cleaned first. On any failure (Ctrl-C too)
        everything started so far is stopped again.
        """
        if agi_mode not in AGI_MODES:
            raise ValueError(f"agi mode {agi_mode!r} not supported (have: {AGI_MODES})")
        if os.geteuid() != 0:
            raise PermissionError("the test PBX needs root (mmdebstrap, unshare, chroot)")
        with self.procs.lock():
            if self._healthy():
                fs.log("already running")
                return self.status()
            self._down_locked()
            try:
                self._start(agi_mode, seed)
            except BaseException:
                fs.log("start failed, stopping what was started")
                self._down_locked()
                raise
        return self.status()

    def down(self) -> None:
        """Stop Asterisk and Redis by recorded PID; check no mount is left behind."""
        with self.procs.lock():
            self._down_locked()

    def status(self) -> dict[str, Any]:
        state = self.procs.load() or {}
        needed = ("asterisk", "redis", "web") + (
            ("fastagi",) if state.get("agi") == "fastagi" else ())
        return {
            "running": bool(state) and all(is_ours(state.get(name)) for name in needed),
            "sip": f"{SIP_HOST}:{SIP_PORT}",
            "web": f"http://{WEB_HOST}:{WEB_PORT}",
            "redis_url": state.get("redis", {}).get("url"),
            "spool": str(self.spool),
            "log": str(self.log_file),
            "console_log": str(self.run_dir / "asterisk.out"),
            "run_dir": str(self.run_dir),
            "rootfs": state.get("rootfs"),
            "agi": state.get("agi"),
            "pids": self.procs.pids(),
        }

    def asterisk_rx(self, command: str, timeout: float = 15.0) -> str:
        """Run one Asterisk CLI command (asterisk -rx) and return its output."""
        if not self.procs.running("asterisk"):
            raise RuntimeError("Asterisk of the test PBX is not running")
        return self._rx(command, timeout)

    def device_state(self, device: str) -> str:
        """DEVICE_STATE(`device`) as Asterisk sees it now (NOT_INUSE, INUSE, ...)."""
        out = self.asterisk_rx(f"dialplan eval function DEVICE_STATE({device})")
        return out.strip().rsplit(" ", 1)[-1]

    def wait_for_device_state(self, device: str, state: str, timeout: float = 10.0) -> None:
        wait_until(lambda: self.device_state(device) == state, timeout,
                   f"{device} to be {state}")

    def channel_count(self) -> int:
        return active_channels(self.asterisk_rx("core show channels count"))

    def drain(self, timeout: float, hang_up: bool = False) -> int:
        """Wait up to `timeout` s for 0 channels; how many were still up then.

        With `hang_up`, those are hung up (so the next run starts clean).
        """
        deadline = time.monotonic() + timeout
        count = self.channel_count()
        while count and time.monotonic() < deadline:
            time.sleep(0.2)
            count = self.channel_count()
        if count and hang_up:
            self.asterisk_rx("channel request hangup all")
            time.sleep(1)
        return count

    def seed(self) -> None:
        """Seed the demo company and extensions 1001-1003 with the host CLI."""
        seed(self.root, self.callroute_env(), self.root / ".venv" / "bin" / "callroute")

    def reset(self) -> None:
        """Back to the seeded topology: Redis and the agent running, demo data only."""
        self.start_redis(seed=False)
        if (self.procs.load() or {}).get("agi") == "fastagi":
            self.start_agent()
        self._seeded.restore(self.redis_url or "", self.seed)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the host's admin CLI against this PBX's Redis (no config file)."""
        return run_cli(self.root / ".venv" / "bin" / "callroute", self.callroute_env(), *args)

    def start_agent(self) -> None:
        """Start callroute-fastagi on the host (Asterisk in the rootfs reaches it on
        127.0.0.1) and wait until it answers a `health` request. No-op if it runs."""
        if self.procs.running("fastagi"):
            return
        if not tcp_port_free(FASTAGI_HOST, FASTAGI_PORT):
            raise RuntimeError(f"TCP {FASTAGI_HOST}:{FASTAGI_PORT} is taken by another process")
        env = {**os.environ, **self.callroute_env(), "CALLROUTE_CONFIG": os.devnull}
        proc = start_fastagi(self.root / ".venv" / "bin" / "callroute-fastagi", FASTAGI_HOST,
                             FASTAGI_PORT, env, self.run_dir / "fastagi.log")
        self.procs.adopt("fastagi", proc)

    def start_web(self) -> None:
        """Start callroute-web (the API and the Office Manager) on WEB_PORT and wait until
        it serves. No-op if it runs."""
        if self.procs.running("web"):
            return
        if not tcp_port_free(WEB_HOST, WEB_PORT):
            raise RuntimeError(f"TCP {WEB_HOST}:{WEB_PORT} is taken by another process")
        env = {**os.environ, **self.callroute_env(), "CALLROUTE_CONFIG": os.devnull}
        web = WebServer(env, self.run_dir / "web.log", port=WEB_PORT).start()
        assert web.proc is not None
        self.procs.adopt("web", web.proc)

    def stop_agent(self) -> None:
        """Stop callroute-fastagi (SIGTERM: it drains calls in flight first)."""
        self.procs.stop("fastagi")

    def stop_redis(self) -> None:
        """Stop the PBX's Redis (a fault for tests); start_redis() brings it back."""
        self.procs.stop("redis")

    def start_redis(self, seed: bool = True) -> None:
        """Restart Redis on its recorded port (empty: no persistence), then re-seed."""
        if self.procs.running("redis"):
            return
        self._start_redis(port=self.redis_port)
        if seed:
            self.seed()

    # ----- start-up steps ---------------------------------------------------

    def _start(self, agi_mode: str, seed: bool) -> None:
        started = time.monotonic()
        if not udp_port_free(SIP_HOST, SIP_PORT):
            raise RuntimeError(f"UDP {SIP_HOST}:{SIP_PORT} is taken by another process")
        rootfs = fs.ensure_rootfs(self.root)
        self.procs.save({"rootfs": str(rootfs), "agi": agi_mode})
        fs.provision(self.root, rootfs)
        self._prepare_run_dir(rootfs)
        self._start_redis()
        if seed:
            self.seed()
        if agi_mode == "fastagi":
            self.start_agent()
        self.start_web()
        self._start_asterisk(rootfs, agi_mode)
        self._wait_ready()
        fs.log(f"up in {time.monotonic() - started:.1f}s")

    def _prepare_run_dir(self, rootfs: Path) -> None:
        """A fresh per-run directory and the asterisk.conf that points into it."""
        fs.safe_rmtree(self.run_dir)
        for sub in RUN_DIRS.values():
            (self.run_dir / sub).mkdir(parents=True)
        packaged = (rootfs / "etc" / "asterisk" / "asterisk.conf").read_text()
        dirs = dict(re.findall(r"^(ast\w+)\s*=>\s*(\S+)", packaged, re.M))
        dirs.update({key: f"{fs.MOUNT_POINT}/{sub}" for key, sub in RUN_DIRS.items()})
        lines = ["; written by tests/harness/pbx.py for this run", "[directories]"]
        lines += [f"{key} => {value}" for key, value in dirs.items()]
        (self.run_dir / "asterisk.conf").write_text("\n".join(lines) + "\n")

    def _start_redis(self, port: int | None = None) -> None:
        redis = RedisServer(self.run_dir / "redis", port=port)
        redis.start()
        assert redis.proc is not None
        self.procs.adopt("redis", redis.proc, url=redis.url)

    def _start_asterisk(self, rootfs: Path, agi_mode: str) -> None:
        """Asterisk in the foreground (-f) of its own session and mount namespace.

        `env -i`: AGI children inherit Asterisk's environment (see rootfs.CLEAN_ENV).
        """
        env = (f"{fs.CLEAN_ENV} CALLROUTE_REDIS_URL={self.redis_url} "
               f"CALLROUTE_AGI={AGI_COMMANDS[agi_mode]} "
               "CALLROUTE_VOICEMAIL_CONTEXT="
               f"{CALLROUTE_SETTINGS['CALLROUTE_VOICEMAIL_CONTEXT']} "
               f"CALLROUTE_FEATURE_AGI={FEATURE_AGI_COMMANDS[agi_mode]}")
        command = f"{env} asterisk -C {ASTERISK_CONF} -f -n"
        (self.run_dir / "asterisk.out").unlink(missing_ok=True)
        proc = spawn(fs.in_namespace(rootfs, command, bind=self.run_dir),
                     self.run_dir / "asterisk.out")
        # unshare, sh and chroot all exec: this PID is Asterisk's.
        self.procs.adopt("asterisk", proc)

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """Fully booted and every endpoint of the topology loaded, or an error."""
        def booted() -> bool:
            if not self.procs.running("asterisk"):
                raise RuntimeError(f"Asterisk exited during start-up; see {self.log_file} "
                                   f"and {self.run_dir / 'asterisk.out'}")
            try:
                self._rx("core waitfullybooted", timeout=10)
            except RuntimeError:
                return False
            return True

        wait_until(booted, timeout, "Asterisk to boot fully")
        endpoints = set(re.findall(r"^\s*Endpoint:\s+([^\s/]+)",
                                   self._rx("pjsip show endpoints"), re.M))
        missing = [e for e in REQUIRED_ENDPOINTS if e not in endpoints]
        if missing:
            raise RuntimeError(f"PJSIP endpoints not loaded: {missing}; see {self.log_file}")

    def console_command(self) -> list[str]:
        """The command that reaches Asterisk's console; append `-rx COMMAND` (what
        `callroute doctor --asterisk-cmd` takes)."""
        state = self.procs.load() or {}
        return ["nsenter", "-t", str(state["asterisk"]["pid"]), "-m", "chroot", state["rootfs"],
                "asterisk", "-C", ASTERISK_CONF]

    def _rx(self, command: str, timeout: float = 15.0) -> str:
        argv = [*self.console_command(), "-rx", command]
        return run(argv, timeout, f"asterisk -rx {command!r}").stdout

    # ----- shutdown ---------------------------------------------------------

    def _down_locked(self) -> None:
        state = self.procs.load()
        if state is None:
            return
        asterisk = state.get("asterisk")
        if is_ours(asterisk):
            self.procs.stop("asterisk")
            # Asterisk led its own session: end AGI children it may have left.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(asterisk["pid"], signal.SIGKILL)
        self.procs.stop("web")
        self.procs.stop("fastagi")
        self.procs.stop("redis")
        if "rootfs" in state:
            mounted = fs.mounts_under(Path(state["rootfs"])) + fs.mounts_under(self.run_dir)
            if mounted:
                raise RuntimeError(f"still mounted after stop (nothing deleted, state kept): "
                                   f"{', '.join(mounted)}")
        self.procs.forget()

    def _healthy(self) -> bool:
        if not self.status()["running"]:
            return False
        if (self.procs.load() or {}).get("agi") == "fastagi" and \
                not fastagi_healthy(FASTAGI_HOST, FASTAGI_PORT):
            return False
        try:
            self._rx("core waitfullybooted", timeout=10)
        except RuntimeError:
            return False
        return True

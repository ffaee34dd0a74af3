"""The test PBX: a real Asterisk 22 plus a private Redis, without Docker.

Debian 12 has no Asterisk, so Asterisk runs from a Debian sid root filesystem
built once with mmdebstrap and cached under `.cache/rootfs/`. It is provisioned
by docker/provision.sh, the very script the Docker image runs, and started in a
private mount namespace so that its mounts (/proc and the per-run directory)
vanish with it and are never visible on the host. Redis runs on the host.

Everything is recorded by PID in `.cache/pbx/state.json`, so `down()` works from
another process and after a crash. The topology is fixed (docker/asterisk/).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.harness.procs import stop_pid, stop_popen, wait_until
from tests.harness.redis_server import RedisServer

SIP_HOST, SIP_PORT = "127.0.0.1", 5060
AGI_MODES = ("fastagi", "process")
FASTAGI_HOST, FASTAGI_PORT = "127.0.0.1", 4573
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
MOUNT_POINT = "/callroute-pbx"  # where the run directory appears inside the rootfs
SRC_IN_ROOTFS = "opt/callroute-src"  # same layout as in the Docker image
ASTERISK_CONF = f"{MOUNT_POINT}/asterisk.conf"
REQUIRED_ENDPOINTS = ("1001", "1002", "1003", "carrier", "inbound")
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)  # sid's Release file is often expired
# asterisk.conf directories that must be per run (everything else stays as packaged).
RUN_DIRS = {
    "astspooldir": "spool", "astrundir": "run", "astlogdir": "log",
    "astdbdir": "db", "astcachedir": "cache",
}
CALLROUTE_SETTINGS = {
    "CALLROUTE_COUNTRY": "FR",
    "CALLROUTE_TRUNK_DIAL": "PJSIP/{number}@carrier",
    "CALLROUTE_DEFAULT_DEVICE": "PJSIP/{ext}",
    # Not "default": proves every default mailbox follows the setting (test_voicemail).
    "CALLROUTE_VOICEMAIL_CONTEXT": "office",
}
WHEEL_INPUTS = ("pyproject.toml", "README.md", "agi")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(message: str) -> None:
    print(f"testpbx: {message}", file=sys.stderr, flush=True)


def host_mirror() -> str:
    """The Debian mirror this machine's apt already uses (never a hard-coded host)."""
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:"):
                uri = line.split()[1]
                if "security" not in uri:
                    return uri
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            fields = line.split()
            if fields[:1] == ["deb"] and "security" not in line:
                return next(f for f in fields[1:] if "://" in f)
    raise RuntimeError("no Debian mirror found in /etc/apt sources")


def mounts_under(path: Path) -> list[str]:
    """Host mount points at or below `path`: anything listed makes deleting unsafe."""
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1].encode().decode("unicode_escape")  # \040 etc.
        if target == prefix or target.startswith(prefix + "/"):
            found.append(target)
    return found


def safe_rmtree(path: Path) -> None:
    """rm -rf that refuses while anything is mounted below, so it can't reach host files."""
    if not path.exists():
        return
    mounted = mounts_under(path)
    if mounted:
        raise RuntimeError(f"refusing to delete {path}: still mounted: {', '.join(mounted)}")
    shutil.rmtree(path)


def start_time(pid: int) -> str | None:
    """Kernel start time of a live (non-zombie) process; tells a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def is_ours(record: dict[str, Any] | None) -> bool:
    return bool(record) and start_time(record["pid"]) == record["start"]


def fastagi_healthy() -> bool:
    """True if callroute-fastagi answers a `health` request."""
    try:
        with socket.create_connection((FASTAGI_HOST, FASTAGI_PORT), timeout=1) as sock:
            sock.sendall(b"agi_network: yes\nagi_network_script: health\n\n")
            reply = sock.makefile("rb").readline()
            sock.sendall(b"200 result=1\n")
    except OSError:
        return False
    return reply.startswith(b"SET VARIABLE CALLROUTE_HEALTH")


def tcp_port_free(host: str, port: int) -> bool:
    """Nothing listens there (connections lingering in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def udp_port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def run(args: Sequence[str | os.PathLike[str]], timeout: float, what: str,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run with a hard timeout and an error that shows the output."""
    try:
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what}: timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def in_namespace(rootfs: Path, command: str, bind: Path | None = None) -> list[str]:
    """argv running `command` chrooted in `rootfs`, in a new private mount namespace.

    /proc (and `bind` at MOUNT_POINT) are mounted only inside that namespace, so
    they disappear when its last process exits. /dev is never bind-mounted:
    mmdebstrap already created the device nodes Asterisk needs.
    """
    mounts = f"mount -t proc proc {rootfs}/proc"
    if bind is not None:
        mounts += f" && mount --bind {bind} {rootfs}{MOUNT_POINT}"
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            f"{mounts} && exec chroot {rootfs} {command}"]


class TestPBX:
    """One test PBX per checkout (SIP is always 127.0.0.1:5060), driven by PID files."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.cache = self.root / ".cache"
        self.home = self.cache / "pbx"
        self.run_dir = self.home / "run"
        self.state_file = self.home / "state.json"
        # Children started by this object: a same-process down() reaps them via
        # their Popen (no zombie, no "still running" ResourceWarning).
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        # (key, DUMP) of the seeded data, taken by the first reset() (see there).
        self._seeded: list[tuple[bytes, bytes]] | None = None

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
        state = self._load_state()
        return state["redis"]["url"] if state and "redis" in state else None

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
        with self._lock():
            if self._healthy():
                log("already running")
                return self.status()
            self._down_locked()
            try:
                self._start(agi_mode, seed)
            except BaseException:
                log("start failed, stopping what was started")
                self._down_locked()
                raise
        return self.status()

    def down(self) -> None:
        """Stop Asterisk and Redis by recorded PID; check no mount is left behind."""
        with self._lock():
            self._down_locked()

    def status(self) -> dict[str, Any]:
        state = self._load_state() or {}
        procs = {name: state[name] for name in ("asterisk", "redis", "fastagi")
                 if name in state}
        needed = ("asterisk", "redis") + (("fastagi",) if state.get("agi") == "fastagi" else ())
        return {
            "running": bool(state) and all(is_ours(state.get(name)) for name in needed),
            "sip": f"{SIP_HOST}:{SIP_PORT}",
            "redis_url": state.get("redis", {}).get("url"),
            "spool": str(self.spool),
            "log": str(self.log_file),
            "console_log": str(self.run_dir / "asterisk.out"),
            "run_dir": str(self.run_dir),
            "rootfs": state.get("rootfs"),
            "agi": state.get("agi"),
            "pids": {name: r["pid"] for name, r in procs.items() if is_ours(r)},
        }

    def asterisk_rx(self, command: str, timeout: float = 15.0) -> str:
        """Run one Asterisk CLI command (asterisk -rx) and return its output."""
        state = self._load_state()
        if not state or not is_ours(state.get("asterisk")):
            raise RuntimeError("Asterisk of the test PBX is not running")
        return self._rx(state, command, timeout)

    def device_state(self, device: str) -> str:
        """DEVICE_STATE(`device`) as Asterisk sees it now (NOT_INUSE, INUSE, ...)."""
        out = self.asterisk_rx(f"dialplan eval function DEVICE_STATE({device})")
        return out.strip().rsplit(" ", 1)[-1]

    def wait_for_device_state(self, device: str, state: str, timeout: float = 10.0) -> None:
        wait_until(lambda: self.device_state(device) == state, timeout,
                   f"{device} to be {state}")

    def channel_count(self) -> int:
        """Active channels, from `core show channels count`."""
        out = self.asterisk_rx("core show channels count")
        match = re.search(r"^(\d+) active channels?", out, re.M)
        if not match:
            raise RuntimeError(f"unexpected `core show channels count` output: {out!r}")
        return int(match.group(1))

    def seed(self) -> None:
        """Seed the demo company and extensions 1001-1003 with the host CLI."""
        cli = self.root / ".venv" / "bin" / "callroute"
        env = {**os.environ, **self.callroute_env(), "CALLROUTE": str(cli)}
        run(["sh", self.root / "docker" / "seed.sh"], 60, "seeding Redis (docker/seed.sh)",
            env=env)

    # ----- start-up steps ---------------------------------------------------

    def _start(self, agi_mode: str, seed: bool) -> None:
        started = time.monotonic()
        if not udp_port_free(SIP_HOST, SIP_PORT):
            raise RuntimeError(f"UDP {SIP_HOST}:{SIP_PORT} is taken by another process")
        rootfs = self.ensure_rootfs()
        self._save_state({"rootfs": str(rootfs), "agi": agi_mode})
        self._provision(rootfs)
        self._prepare_run_dir(rootfs)
        self._start_redis()
        if seed:
            self.seed()
        if agi_mode == "fastagi":
            self.start_agent()
        self._start_asterisk(rootfs, agi_mode)
        self._wait_ready()
        log(f"up in {time.monotonic() - started:.1f}s")

    def start_agent(self) -> None:
        """Start callroute-fastagi on the host (Asterisk in the rootfs reaches it on
        127.0.0.1) and wait until it answers a `health` request. No-op if it runs."""
        if is_ours((self._load_state() or {}).get("fastagi")):
            return
        if not tcp_port_free(FASTAGI_HOST, FASTAGI_PORT):
            raise RuntimeError(f"TCP {FASTAGI_HOST}:{FASTAGI_PORT} is taken by another process")
        command = [str(self.root / ".venv" / "bin" / "callroute-fastagi"),
                   "--listen", f"{FASTAGI_HOST}:{FASTAGI_PORT}"]
        env = {**os.environ, **self.callroute_env(), "CALLROUTE_CONFIG": os.devnull}
        with (self.run_dir / "fastagi.log").open("ab") as out:
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=out, start_new_session=True)
        self._children["fastagi"] = proc
        self._update_state(fastagi={"pid": proc.pid, "start": start_time(proc.pid)})
        wait_until(lambda: proc.poll() is None and fastagi_healthy(), 15,
                   f"callroute-fastagi on {FASTAGI_HOST}:{FASTAGI_PORT}")

    def stop_agent(self) -> None:
        """Stop callroute-fastagi (SIGTERM: it drains calls in flight first)."""
        state = self._load_state() or {}
        if is_ours(state.get("fastagi")):
            self._stop("fastagi", state["fastagi"]["pid"])

    def ensure_rootfs(self) -> Path:
        """The cached sid rootfs for the current package list, built if missing.

        Built in a temporary directory and renamed, so a half-built tree is never
        taken for a good one. The key covers what the build depends on; config
        and code are provisioned on every `up` and need no rebuild.
        """
        packages = self._packages()
        key = hashlib.sha256(json.dumps(["sid", "minbase", packages, APT_OPTIONS])
                             .encode()).hexdigest()[:12]
        # CALLROUTE_CACHE_DIR lets CI keep the rootfs across fresh clones.
        base = Path(os.environ.get("CALLROUTE_CACHE_DIR") or self.cache) / "rootfs"
        rootfs = base / f"sid-{key}"
        if (rootfs / "usr" / "sbin" / "asterisk").exists():
            return rootfs
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".build-{key}"
        safe_rmtree(tmp)  # a build interrupted earlier
        mirror = host_mirror()
        log(f"building the sid rootfs from {mirror} (about 30 s, once)")
        started = time.monotonic()
        run(["mmdebstrap", "--variant=minbase", f"--include={','.join(packages)}",
             *(f"--aptopt={opt}" for opt in APT_OPTIONS), "sid", tmp, mirror],
            900, "mmdebstrap")
        (tmp / MOUNT_POINT.lstrip("/")).mkdir()
        tmp.rename(rootfs)
        log(f"built {rootfs.name} in {time.monotonic() - started:.1f}s")
        return rootfs

    def _packages(self) -> list[str]:
        text = (self.root / "docker" / "packages.txt").read_text()
        return sorted(line.strip() for line in text.splitlines()
                      if line.strip() and not line.startswith("#"))

    def _provision(self, rootfs: Path) -> None:
        """Current callroute wheels + config into the rootfs, via docker/provision.sh."""
        started = time.monotonic()
        src = rootfs / SRC_IN_ROOTFS
        safe_rmtree(src)
        shutil.copytree(self.root / "docker", src / "docker")
        shutil.copytree(self.root / "dialplan", src / "dialplan")
        shutil.copytree(self._wheels(), src / "wheels")
        command = (f"env -i PATH={CLEAN_PATH} HOME=/root LANG=C.UTF-8 "
                   f"sh /{SRC_IN_ROOTFS}/docker/provision.sh /{SRC_IN_ROOTFS}/wheels")
        run(in_namespace(rootfs, command), 300, "docker/provision.sh in the rootfs")
        log(f"provisioned callroute + config in {time.monotonic() - started:.1f}s")

    def _wheel_sources(self) -> list[Path]:
        """The files the callroute wheel is built from (pyproject: packages = ["agi"])."""
        files: list[Path] = []
        for name in WHEEL_INPUTS:
            path = self.root / name
            if path.is_dir():
                files += sorted(f for f in path.rglob("*")
                                if f.is_file() and "__pycache__" not in f.parts)
            elif path.is_file():
                files.append(path)
        return files

    def _wheels(self) -> Path:
        """callroute and its dependencies as wheels, built on the host (the chroot
        has no network) and cached by the content of the wheel's sources.

        Built from a copy of those sources: an in-tree build reuses a stale build/
        directory, so deleted modules would ship. All wheels must be pure-Python,
        because the rootfs runs another Python (3.14) than the host.
        """
        sources = self._wheel_sources()
        digest = hashlib.sha256()
        for path in sources:
            digest.update(f"{path.relative_to(self.root)}\0".encode() + path.read_bytes())
        cached = self.cache / "wheels" / digest.hexdigest()[:16]
        if cached.is_dir():
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".build-") as tmp:
            tree, built = Path(tmp) / "src", Path(tmp) / "wheels"
            for path in sources:
                target = tree / path.relative_to(self.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            run([self.root / ".venv" / "bin" / "pip", "wheel", "-q", "-w", built, tree],
                300, "pip wheel")
            impure = [w.name for w in built.glob("*.whl") if not w.name.endswith("-none-any.whl")]
            if impure:
                raise RuntimeError(f"wheels not pure-Python, unusable in the rootfs: {impure}")
            for old in cached.parent.iterdir():
                if not old.name.startswith("."):
                    safe_rmtree(old)
            built.rename(cached)
        return cached

    def _prepare_run_dir(self, rootfs: Path) -> None:
        """A fresh per-run directory and the asterisk.conf that points into it."""
        safe_rmtree(self.run_dir)
        for sub in RUN_DIRS.values():
            (self.run_dir / sub).mkdir(parents=True)
        packaged = (rootfs / "etc" / "asterisk" / "asterisk.conf").read_text()
        dirs = dict(re.findall(r"^(ast\w+)\s*=>\s*(\S+)", packaged, re.M))
        dirs.update({key: f"{MOUNT_POINT}/{sub}" for key, sub in RUN_DIRS.items()})
        lines = ["; written by tests/harness/pbx.py for this run", "[directories]"]
        lines += [f"{key} => {value}" for key, value in dirs.items()]
        (self.run_dir / "asterisk.conf").write_text("\n".join(lines) + "\n")

    def reset(self) -> None:
        """Back to the seeded topology: Redis and the agent running, demo data only.

        The first reset seeds through docker/seed.sh (the real CLI, four processes) and
        keeps a DUMP of every key it wrote; later ones FLUSHDB and RESTORE those bytes
        in one transaction: the same data, without ~1 s of CLI start-ups per test.
        """
        import redis  # the harness's own client; only resets need it

        self.start_redis(seed=False)
        if (self._load_state() or {}).get("agi") == "fastagi":
            self.start_agent()
        client = redis.Redis.from_url(self.redis_url or "")
        try:
            if self._seeded is None:
                client.flushdb()
                self.seed()
                self._seeded = [(key, client.dump(key)) for key in client.keys("*")]
            else:
                pipe = client.pipeline(transaction=True)
                pipe.flushdb()
                for key, dump in self._seeded:
                    pipe.restore(key, 0, dump)
                pipe.execute()
        finally:
            client.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the host's admin CLI against this PBX's Redis (no config file)."""
        env = {**os.environ, **self.callroute_env(), "CALLROUTE_CONFIG": os.devnull}
        return subprocess.run([str(self.root / ".venv" / "bin" / "callroute"), *args],
                              env=env, capture_output=True, text=True, timeout=30,
                              check=False)

    def _redis_port(self) -> int:
        return int((self.redis_url or "").rsplit(":", 1)[1].split("/")[0])

    def stop_redis(self) -> None:
        """Stop the PBX's Redis (a fault for tests); start_redis() brings it back."""
        state = self._load_state() or {}
        if is_ours(state.get("redis")):
            self._stop("redis", state["redis"]["pid"])

    def start_redis(self, seed: bool = True) -> None:
        """Restart Redis on its recorded port (empty: no persistence), then re-seed."""
        state = self._load_state() or {}
        if is_ours(state.get("redis")):
            return
        self._start_redis(port=self._redis_port())
        if seed:
            self.seed()

    def _start_redis(self, port: int | None = None) -> None:
        redis = RedisServer(self.run_dir / "redis", port=port)
        redis.start()
        self._children["redis"] = redis.proc
        self._update_state(redis={"pid": redis.pid, "start": start_time(redis.pid),
                                  "url": redis.url})

    def _start_asterisk(self, rootfs: Path, agi_mode: str) -> None:
        """Asterisk in the foreground (-f) of its own session and mount namespace.

        `env -i`: AGI children inherit Asterisk's environment, and the host's
        (PYTHONPATH, VIRTUAL_ENV...) must not leak into the rootfs Python.
        """
        env = (f"env -i PATH={CLEAN_PATH} HOME=/root LANG=C.UTF-8 "
               f"CALLROUTE_REDIS_URL={self.redis_url} CALLROUTE_AGI={AGI_COMMANDS[agi_mode]} "
               "CALLROUTE_VOICEMAIL_CONTEXT="
               f"{CALLROUTE_SETTINGS['CALLROUTE_VOICEMAIL_CONTEXT']} "
               f"CALLROUTE_FEATURE_AGI={FEATURE_AGI_COMMANDS[agi_mode]}")
        command = f"{env} asterisk -C {ASTERISK_CONF} -f -n"
        with (self.run_dir / "asterisk.out").open("wb") as out:
            proc = subprocess.Popen(in_namespace(rootfs, command, bind=self.run_dir),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True)
        # unshare, sh and chroot all exec: this PID is Asterisk's.
        self._update_state(asterisk={"pid": proc.pid, "start": start_time(proc.pid)})
        self._children["asterisk"] = proc

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """Fully booted and every endpoint of the topology loaded, or an error."""
        state = self._load_state()

        def booted() -> bool:
            if not is_ours(state["asterisk"]):
                raise RuntimeError(f"Asterisk exited during start-up; see {self.log_file} "
                                   f"and {self.run_dir / 'asterisk.out'}")
            try:
                self._rx(state, "core waitfullybooted", timeout=10)
            except RuntimeError:
                return False
            return True

        wait_until(booted, timeout, "Asterisk to boot fully")
        endpoints = set(re.findall(r"^\s*Endpoint:\s+([^\s/]+)",
                                   self._rx(state, "pjsip show endpoints"), re.M))
        missing = [e for e in REQUIRED_ENDPOINTS if e not in endpoints]
        if missing:
            raise RuntimeError(f"PJSIP endpoints not loaded: {missing}; see {self.log_file}")

    def _rx(self, state: dict[str, Any], command: str, timeout: float = 15.0) -> str:
        argv = ["nsenter", "-t", str(state["asterisk"]["pid"]), "-m", "chroot", state["rootfs"],
                "asterisk", "-C", ASTERISK_CONF, "-rx", command]
        return run(argv, timeout, f"asterisk -rx {command!r}").stdout

    # ----- shutdown ---------------------------------------------------------

    def _down_locked(self) -> None:
        state = self._load_state()
        if state is None:
            return
        asterisk = state.get("asterisk")
        if is_ours(asterisk):
            self._stop("asterisk", asterisk["pid"])
            # Asterisk led its own session: end AGI children it may have left.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(asterisk["pid"], signal.SIGKILL)
        if is_ours(state.get("fastagi")):
            self._stop("fastagi", state["fastagi"]["pid"])
        if is_ours(state.get("redis")):
            self._stop("redis", state["redis"]["pid"])
        if "rootfs" in state:
            mounted = mounts_under(Path(state["rootfs"])) + mounts_under(self.run_dir)
            if mounted:
                raise RuntimeError(f"still mounted after stop (nothing deleted, state kept): "
                                   f"{', '.join(mounted)}")
        self.state_file.unlink()

    def _stop(self, name: str, pid: int) -> None:
        proc = self._children.pop(name, None)
        if proc is not None and proc.pid == pid:
            stop_popen(proc, timeout=10)
        else:
            stop_pid(pid, timeout=10)

    def _healthy(self) -> bool:
        state = self._load_state()
        if not state or not self.status()["running"]:
            return False
        try:
            self._rx(state, "core waitfullybooted", timeout=10)
        except RuntimeError:
            return False
        return True

    # ----- state ------------------------------------------------------------

    def _load_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _update_state(self, **changes: Any) -> None:
        self._save_state({**(self._load_state() or {}), **changes})

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One up/down at a time per checkout (parallel test sessions, two shells)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

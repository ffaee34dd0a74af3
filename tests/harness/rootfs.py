"""The Debian sid root filesystem the test PBX runs Asterisk from, and callroute's wheels.

Debian 12 has no Asterisk, so Asterisk runs from a sid root filesystem built once with
mmdebstrap and cached (under $CALLROUTE_CACHE_DIR, or the checkout's `.cache/`) by the
package list. callroute goes into it as wheels built on the host (the chroot has no
network), provisioned by docker/provision.sh, the very script the Docker image runs.
None of this knows whether a PBX runs: tests/harness/pbx.py starts and stops one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.procs import run

MOUNT_POINT = "/callroute-pbx"  # where the run directory appears inside the rootfs
SRC_IN_ROOTFS = "opt/callroute-src"  # same layout as in the Docker image
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)  # sid's Release file is often expired
WHEEL_INPUTS = ("pyproject.toml", "README.md", "agi")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLEAN_ENV = f"env -i PATH={CLEAN_PATH} HOME=/root LANG=C.UTF-8"
"""Prefix of every command run in the rootfs: the host's environment (PYTHONPATH,
VIRTUAL_ENV...) must not leak into the rootfs Python."""


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


def packages(root: Path) -> list[str]:
    text = (root / "docker" / "packages.txt").read_text()
    return sorted(line.strip() for line in text.splitlines()
                  if line.strip() and not line.startswith("#"))


def rootfs_path(root: Path) -> Path:
    """Where the rootfs for the current package list lives (built or not).

    The key covers what the build depends on; config and code are provisioned on
    every `up` and need no rebuild. CALLROUTE_CACHE_DIR lets CI keep the rootfs
    across fresh clones.
    """
    key = hashlib.sha256(json.dumps(["sid", "minbase", packages(root), APT_OPTIONS])
                         .encode()).hexdigest()[:12]
    base = Path(os.environ.get("CALLROUTE_CACHE_DIR") or root / ".cache") / "rootfs"
    return base / f"sid-{key}"


def ensure_rootfs(root: Path) -> Path:
    """The cached sid rootfs for the current package list, built if missing.

    Built in a temporary directory and renamed, so a half-built tree is never
    taken for a good one.
    """
    rootfs = rootfs_path(root)
    if (rootfs / "usr" / "sbin" / "asterisk").exists():
        return rootfs
    wanted = packages(root)
    base = rootfs.parent
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".build-{rootfs.name.removeprefix('sid-')}"
    safe_rmtree(tmp)  # a build interrupted earlier
    mirror = host_mirror()
    log(f"building the sid rootfs from {mirror} (about 30 s, once)")
    started = time.monotonic()
    run(["mmdebstrap", "--variant=minbase", f"--include={','.join(wanted)}",
         *(f"--aptopt={opt}" for opt in APT_OPTIONS), "sid", tmp, mirror],
        900, "mmdebstrap")
    (tmp / MOUNT_POINT.lstrip("/")).mkdir()
    tmp.rename(rootfs)
    log(f"built {rootfs.name} in {time.monotonic() - started:.1f}s")
    return rootfs


def package_version(rootfs: Path, package: str) -> str | None:
    """The installed version of a Debian package in the rootfs, from dpkg's status file
    (no process, no mount)."""
    try:
        status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text(errors="replace")
    except OSError:
        return None
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields.get("Version")
    return None


def wheel_sources(root: Path) -> list[Path]:
    """The files the callroute wheel is built from (pyproject: packages = ["agi"])."""
    files: list[Path] = []
    for name in WHEEL_INPUTS:
        path = root / name
        if path.is_dir():
            files += sorted(f for f in path.rglob("*")
                            if f.is_file() and "__pycache__" not in f.parts)
        elif path.is_file():
            files.append(path)
    return files


def wheels(root: Path) -> Path:
    """callroute and its dependencies as wheels, built on the host (the chroot has no
    network) and cached by the content of the wheel's sources.

    Built from a copy of those sources: an in-tree build reuses a stale build/
    directory, so deleted modules would ship. All wheels must be pure-Python,
    because the rootfs runs another Python (3.14) than the host.
    """
    sources = wheel_sources(root)
    digest = hashlib.sha256()
    for path in sources:
        digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
    cached = root / ".cache" / "wheels" / digest.hexdigest()[:16]
    if cached.is_dir():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".build-") as tmp:
        tree, built = Path(tmp) / "src", Path(tmp) / "wheels"
        for path in sources:
            target = tree / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        run([root / ".venv" / "bin" / "pip", "wheel", "-q", "-w", built, tree],
            300, "pip wheel")
        impure = [w.name for w in built.glob("*.whl") if not w.name.endswith("-none-any.whl")]
        if impure:
            raise RuntimeError(f"wheels not pure-Python, unusable in the rootfs: {impure}")
        for old in cached.parent.iterdir():
            if not old.name.startswith("."):
                safe_rmtree(old)
        built.rename(cached)
    return cached


def provision(root: Path, rootfs: Path) -> None:
    """Current callroute wheels + config into the rootfs, via docker/provision.sh."""
    started = time.monotonic()
    src = rootfs / SRC_IN_ROOTFS
    safe_rmtree(src)
    shutil.copytree(root / "docker", src / "docker")
    shutil.copytree(root / "dialplan", src / "dialplan")
    shutil.copytree(wheels(root), src / "wheels")
    command = f"{CLEAN_ENV} sh /{SRC_IN_ROOTFS}/docker/provision.sh /{SRC_IN_ROOTFS}/wheels"
    run(in_namespace(rootfs, command), 300, "docker/provision.sh in the rootfs")
    log(f"provisioned callroute + config in {time.monotonic() - started:.1f}s")

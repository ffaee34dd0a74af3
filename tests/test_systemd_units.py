"""The shipped systemd units (docker/systemd/), checked by systemd's own tools.

systemd is not PID 1 on the test machines, so the units can't be started here; what
can be proven is what a packager's CI would check: `systemd-analyze verify` (syntax,
dependencies, the ExecStart binary) and `systemd-analyze security --offline=true`
(the exposure score a reviewer reads). verify runs against a scratch root holding
the host's own units plus stand-ins for /opt/callroute/bin/*, the install path the
units and docker/provision.sh share, so nothing is installed on the machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT_DIR = ROOT / "docker" / "systemd"
UNITS = ("callroute-fastagi.service", "callroute-web.service")
MAX_EXPOSURE = 2.0
HOST_UNITS = Path("/usr/lib/systemd/system")
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed "
                                "(Debian package `systemd`)")


def settings(unit: Path) -> list[tuple[str, str]]:
    """(key, value) in file order; a key may repeat (SystemCallFilter=)."""
    pairs = []
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ANALYZE), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def scratch_root(tmp_path: Path, unit: Path) -> Path:
    """A root with the host's units, `unit` installed, and its ExecStart binary."""
    root = tmp_path / "root"
    shutil.copytree(HOST_UNITS, root / HOST_UNITS.relative_to("/"), symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    for key, value in settings(unit):
        if key == "ExecStart":
            binary = root / value.split()[0].lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    return root


def verify(tmp_path: Path, unit: Path) -> subprocess.CompletedProcess[str]:
    return analyze("verify", "--man=no", f"--root={scratch_root(tmp_path, unit)}", unit.name)


@pytest.mark.parametrize("name", UNITS)
def test_verify_passes_without_a_single_warning(tmp_path, name):
    proc = verify(tmp_path, UNIT_DIR / name)
    # verify exits 0 on settings it ignores with a warning: the output must be empty too.
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_verify_would_catch_a_broken_unit(tmp_path):
    broken = tmp_path / "callroute-fastagi.service"
    broken.write_text((UNIT_DIR / UNITS[0]).read_text().replace("Type=notify", "Type=notfy"))
    proc = verify(tmp_path, broken)
    assert "Failed to parse service type" in proc.stderr


@pytest.mark.parametrize("name", UNITS)
def test_security_exposure_is_at_most_2(name):
    proc = analyze("security", "--offline=true", "--no-pager", str(UNIT_DIR / name))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, proc.stdout


@pytest.mark.parametrize("name", UNITS)
def test_the_settings_a_reviewer_looks_for(name):
    found = settings(UNIT_DIR / name)
    for required in [("Type", "notify"), ("Restart", "on-failure"), ("DynamicUser", "yes"),
                     ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                     ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                     ("SystemCallFilter", "@system-service")]:
        assert required in found, required
    keys = {key for key, _ in found}
    assert {"RestrictAddressFamilies", "MemoryMax", "WatchdogSec"} <= keys
    assert any(key == "ExecStart" and value.startswith("/opt/callroute/bin/")
               for key, value in found)

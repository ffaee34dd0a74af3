"""docker/compose.yml, run as a user runs it, on the private engine.

`ComposeStack` also offers what the e2e call runner (tests/harness/calls.py
place_call) reads from a PBX: the channel count, the voicemail spool and Asterisk's
log. Spool and log are the stack's named volumes, read on the host where the engine
keeps them, so a call's facts come from the very files the containers wrote.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.compose.engine import ROOT, DockerEngine
from tests.harness.pbx import active_channels
from tests.harness.procs import run

COMPOSE_FILE = ROOT / "docker" / "compose.yml"
PROJECT = "callroute"  # `name:` in compose.yml
# The `web` service is behind a profile: enabled for every compose command, down and
# the last-resort cleanup included, so none leaves its container behind.
PROFILES = "web"
LONG_RUNNING = ("redis", "agent", "asterisk", "web")  # each has a healthcheck
SEED_SERVICE = "callroute"  # runs docker/seed.sh once and exits
WEB_SERVICE = "web"


class ComposeStack:
    __test__ = False

    def __init__(self, engine: DockerEngine, variables: dict[str, str]):
        self.engine = engine
        # CALLROUTE_REDIS_IMAGE, CALLROUTE_REDIS_PORT, CALLROUTE_WEB_PORT
        self.variables = variables

    def compose(self, *args: str, timeout: float = 120, stdin: str | None = None) -> str:
        argv = ["docker", "compose", "-f", str(COMPOSE_FILE), *args]
        env = {**self.engine.env, "COMPOSE_PROFILES": PROFILES, **self.variables}
        extra = {} if stdin is None else {"input": stdin}
        return run(argv, timeout, " ".join(argv[1:4] + list(args[:1])), env=env,
                   **extra).stdout

    # ----- lifecycle --------------------------------------------------------

    def up(self) -> None:
        self.compose("up", "--build", "-d", timeout=900)

    def wait_healthy(self, timeout: float = 120) -> dict[str, dict[str, Any]]:
        """Every long-running service healthy and the seeding done (exit 0)."""
        deadline = time.monotonic() + timeout
        while True:
            services = self.services()
            self.engine.container_ids.update(s["ID"] for s in services.values())
            seed = services.get(SEED_SERVICE, {})
            if seed.get("State") == "exited" and seed.get("ExitCode") != 0:
                raise RuntimeError(f"seeding failed:\n{self.compose('logs', SEED_SERVICE)}")
            broken = [n for n in LONG_RUNNING if services.get(n, {}).get("State") == "exited"
                      or services.get(n, {}).get("Health") == "unhealthy"]
            if broken:
                raise RuntimeError(f"{broken} failed:\n{self.compose('logs', *broken)}")
            if (all(services.get(n, {}).get("Health") == "healthy" for n in LONG_RUNNING)
                    and seed.get("State") == "exited"):
                return services
            if time.monotonic() > deadline:
                raise TimeoutError(f"stack not healthy after {timeout:.0f}s: {services}")
            time.sleep(0.5)

    def services(self) -> dict[str, dict[str, Any]]:
        out = self.compose("ps", "-a", "--format", "json")
        return {s["Service"]: s for s in map(json.loads, out.splitlines()) if s}

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180)

    def stop_service(self, service: str) -> None:
        self.compose("stop", service)

    def cli(self, *args: str, service: str = SEED_SERVICE, stdin: str | None = None) -> str:
        """The admin CLI in a one-off container of the stack's image, as documented;
        `stdin` feeds a secret (--password-stdin) without putting it in argv."""
        return self.compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "callroute",
                            service, *args, stdin=stdin)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.variables['CALLROUTE_WEB_PORT']}"

    # ----- what place_call reads ----------------------------------------------

    def asterisk_rx(self, command: str) -> str:
        return self.compose("exec", "-T", "asterisk", "asterisk", "-rx", command, timeout=30)

    def channel_count(self) -> int:
        return active_channels(self.asterisk_rx("core show channels count"))

    def volume(self, name: str) -> Path:
        out = self.engine.docker("volume", "inspect", f"{PROJECT}_{name}", "--format",
                                 "{{.Mountpoint}}")
        return Path(out.stdout.strip())

    @property
    def spool(self) -> Path:
        """Host path of the `spool` volume (Asterisk's /var/spool/asterisk)."""
        return self.volume("spool")

    @property
    def log_file(self) -> Path:
        """Asterisk's `messages` log, in the `logs` volume."""
        return self.volume("logs") / "messages"

    def volumes(self) -> list[str]:
        out = self.engine.docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose"
                                 f".project={PROJECT}")
        return out.stdout.split()

    def containers(self) -> list[str]:
        out = self.engine.docker("ps", "-aq", "--filter",
                                 f"label=com.docker.compose.project={PROJECT}")
        return out.stdout.split()


def cleanup() -> list[str]:
    """What a killed run left (pytest got no chance to run its fixtures): the stack down,
    the daemon stopped, its mounts undone. Returns what is still left."""
    engine = DockerEngine()
    if engine.daemon_pid() is not None:
        stack = ComposeStack(engine, {})
        engine.container_ids.update(stack.containers())
        try:
            stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180)
        except RuntimeError as exc:
            print(f"compose-test cleanup: {exc}", file=sys.stderr)
        engine.stop()
    elif engine.run_dir.exists():
        engine.stop()  # no daemon, but maybe its mounts
    left = engine.leftovers()
    if not left:
        engine.remove_run_dir()
    return left


if __name__ == "__main__":
    if sys.argv[1:] != ["cleanup"]:
        sys.exit("usage: python -m tests.compose.stack cleanup")
    remaining = cleanup()
    for item in remaining:
        print(f"compose-test cleanup: still left: {item}", file=sys.stderr)
    sys.exit(1 if remaining else 0)

"""The demo data of the test PBX and the benchmark: docker/seed.sh, and a fast reset.

docker/seed.sh writes the company and extensions 1001-1003 with the real CLI, as a new
install would. Running it costs ~1 s of CLI start-ups, too much before every e2e test,
so `SeedSnapshot` keeps a DUMP of every key it wrote and restores those bytes instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.harness.procs import run

# The agent's and the CLI's settings on the test PBX (docker/asterisk/ topology).
CALLROUTE_SETTINGS = {
    "CALLROUTE_COUNTRY": "FR",
    "CALLROUTE_TRUNK_DIAL": "PJSIP/{number}@carrier",
    "CALLROUTE_DEFAULT_DEVICE": "PJSIP/{ext}",
    # Not "default": proves every default mailbox follows the setting (test_voicemail).
    "CALLROUTE_VOICEMAIL_CONTEXT": "office",
}


def seed(root: Path, env: Mapping[str, str], callroute: Path) -> None:
    """docker/seed.sh with the CLI `callroute`, against the Redis that `env` names."""
    run(["sh", root / "docker" / "seed.sh"], 60, "seeding Redis (docker/seed.sh)",
        env={**os.environ, **env, "CALLROUTE": str(callroute)})


def run_cli(callroute: Path, env: Mapping[str, str],
            *args: str) -> subprocess.CompletedProcess[str]:
    """The admin CLI as a process (no config file); the caller reads its exit code."""
    return subprocess.run([str(callroute), *args],
                          env={**os.environ, **env, "CALLROUTE_CONFIG": os.devnull},
                          capture_output=True, text=True, timeout=30, check=False)


class SeedSnapshot:
    """The seeded data as (key, DUMP) pairs: taken once, restored in one transaction."""

    def __init__(self) -> None:
        self._dumps: list[tuple[bytes, bytes]] | None = None

    def restore(self, redis_url: str, seed_now: Callable[[], None]) -> None:
        """FLUSHDB, then the seeded keys. The first call seeds with `seed_now()`."""
        import redis  # the harness's own client; only resets need it

        client = redis.Redis.from_url(redis_url)
        try:
            if self._dumps is None:
                client.flushdb()
                seed_now()
                self._dumps = [(key, client.dump(key)) for key in client.keys("*")]
            else:
                pipe = client.pipeline(transaction=True)
                pipe.flushdb()
                for key, dump in self._dumps:
                    pipe.restore(key, 0, dump)
                pipe.execute()
        finally:
            client.close()

"""callroute-fastagi's rate-limited log lines: refusals and outages, never one per call.

A client hammering the port, or every call of a Redis outage, must not flood the log.
"""

from __future__ import annotations

import logging
import threading
import time

from agi import routing

log = logging.getLogger("callroute.fastagi")
# The decisions of an outage: the store could not be read (Route.fault).
_STORE_FAULTS = frozenset((routing.FAULT_STORE_DOWN, routing.FAULT_STORE_TIMEOUT))


class ThrottledLog:
    """At most one warning per second for each kind of refusal, with how many were
    suppressed: a client hammering the port must not flood the log."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self.interval) < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last such line)" if suppressed else ""
        log.warning("%s%s", message, more)


class OutageLog:
    """Logs the first FALLBACK of an outage and the recovery: one line each, not per call.

    Called by the event loop's thread only, so it needs no lock."""

    def __init__(self) -> None:
        self._failing = False

    def record(self, route: routing.Route) -> None:
        failing = route.fault in _STORE_FAULTS
        if failing == self._failing:  # every call but the first of a change: no work
            return
        self._failing = failing
        if failing:
            log.warning("calls fall back to ringing default devices: %s", route.reason)
        else:
            log.info("store reachable again; routing normally")

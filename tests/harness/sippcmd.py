"""The SIPp command line: scenario files, the defaults every peer shares, and overrides.

Like the Asterisk testsuite's `SIPpScenario`, a peer starts from one default command
line and its caller overrides what it needs (`options`), so an e2e phone, a benchmark
caller at 80 calls/s and a soak phone are the same class with different arguments.

Why the defaults look the way they do (checked against SIPp 3.6.1 and 3.8):
- `-i/-mi 127.0.0.1 -bind_local`: the topology is loopback only; nothing listens on
  other interfaces.
- `-mp` / `-cp`: every peer gets its own media ports (`-mp` and `-mp`+2) and its own
  control port, derived from its SIP port and above 30000, so that peers never collide
  with each other or with Asterisk's RTP range (10000-20000). Left alone, SIPp binds
  the control port 8888 on 0.0.0.0 and probes upwards, which races when several peers
  start at once.
- `-timeout Ns -timeout_error`: a peer whose calls never come, or never end, exits
  with an error by itself. It is also what reaps a peer if the test process dies
  without running its fixtures.
- `-nostdin` and stdin=DEVNULL keep SIPp from reading keyboard commands; `-bg` is not
  used, because it would fork and we would lose the PID we must stop.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[1] / "e2e" / "scenarios"
"""Where the scenario XML files live."""

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
HOST = "127.0.0.1"

CALL_TRACES: tuple[str, ...] = ("msg", "err", "logs", "screen")
"""What a one-call e2e peer records: every message, errors, its <log> actions, the screen."""
LOAD_TRACES: tuple[str, ...] = ("err", "stat")
"""What a many-call load peer records by default: errors and the statistics counters."""


def scenario_path(scenario: str | Path) -> Path:
    """Resolve `uas_busy`, `uas_busy.xml` or a path to an existing scenario file."""
    path = Path(scenario)
    if not path.suffix:
        path = path.with_suffix(".xml")
    if not path.is_absolute() and not path.exists():
        path = SCENARIOS / path
    if not path.is_file():
        raise FileNotFoundError(f"no SIPp scenario {scenario!r} (looked in {SCENARIOS})")
    return path


def scenario_variables(path: Path) -> set[str]:
    """Names the scenario declares in <Global variables="..."/>, i.e. what -set accepts.

    SIPp refuses an undeclared -set with a terse message in its log; checking here
    names the scenario and the allowed variables instead.
    """
    names: set[str] = set()
    for element in ET.parse(path).getroot().iter("Global"):
        names.update(v.strip() for v in element.get("variables", "").split(",") if v.strip())
    return names


def media_base_port(sip_port: int) -> int:
    """First of the ports reserved for a peer: media at +0 and +2, control at +6.

    30000 + 10 * (port mod 3000) keeps every peer on its own 10-port block, above
    Asterisk's RTP range and below 60000, for any SIP port.
    """
    return 30000 + 10 * (sip_port % 3000)


def _options(*pairs: tuple[str, object]) -> dict[str, str | None]:
    return {name: None if value is None else str(value) for name, value in pairs}


def trace_options(files: Mapping[str, Path], traces: Collection[str]) -> dict[str, str | None]:
    """The options that turn on each trace; `files` names the file of each one that has
    one ("msg", "err", "logs", "screen", "stat"); "rtt" writes next to the scenario's
    name in the peer's working directory."""
    known = {
        "msg": _options(("-trace_msg", None), ("-message_file", files.get("msg"))),
        "err": _options(("-trace_err", None), ("-error_file", files.get("err"))),
        "logs": _options(("-trace_logs", None), ("-log_file", files.get("logs"))),
        "screen": _options(("-trace_screen", None), ("-screen_file", files.get("screen"))),
        "stat": _options(("-trace_stat", None), ("-stf", files.get("stat")), ("-fd", 1)),
        "rtt": _options(("-trace_rtt", None), ("-rtt_freq", 1)),
    }
    unknown = sorted(set(traces) - set(known))
    if unknown:
        raise ValueError(f"unknown SIPp traces {unknown}; known: {sorted(known)}")
    found: dict[str, str | None] = {}
    for trace in traces:
        found.update(known[trace])
    return found


def command(path: Path, port: int, files: Mapping[str, Path], *, service: str | None,
            remote: str | None, variables: Mapping[str, str], timeout_s: float,
            max_calls: int, traces: Collection[str], options: Mapping[str, object],
            sipp: str = SIPP) -> list[str]:
    """The default command line, then the caller's `options` over it.

    `options` maps a SIPp option to its value (None for a bare flag); one the
    defaults already have is replaced in place. The remote address comes last.
    """
    base = media_base_port(port)
    merged = _options(
        ("-sf", path), ("-i", HOST), ("-mi", HOST), ("-bind_local", None), ("-p", port),
        ("-mp", base), ("-ci", HOST), ("-cp", base + 6), ("-m", max_calls),
        ("-nostdin", None), ("-timeout", f"{max(1, round(timeout_s))}s"),
        ("-timeout_error", None))
    merged.update(trace_options(files, traces))
    if service is not None:
        merged["-s"] = service
    merged.update(_options(*options.items()))
    argv = [sipp]
    for name, value in merged.items():
        argv += [name] if value is None else [name, value]
    for key, value in variables.items():
        argv += ["-set", key, str(value)]
    return argv + ([remote] if remote is not None else [])

"""The variable transport under test: set hostile values with the agent's own
`AgiSession.set_variables` (EXEC MSet), then read each back with GET VARIABLE.

Imported by tests/e2e/test_variable_transport.py (FastAGI: the probe runs in the
test's own server), and run by Asterisk as a process AGI inside the PBX's root
filesystem (`python transport_probe.py DIR`), where only the `agi` package is
installed: so this file imports nothing from tests/. The values come from DIR/
transport_values.json; what Asterisk holds goes to DIR/transport_result.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agi.protocol import AgiSession, parse_result

VALUES_FILE = "transport_values.json"
RESULT_FILE = "transport_result.json"


def probe(session: AgiSession, pairs: list[tuple[str, str]], extra: list[str]) -> dict:
    """Set `pairs`, then {name: value as Asterisk holds it, or None if unset} for every
    name of `pairs` and `extra` (names that must stay unset)."""
    session.set_variables(pairs)
    held: dict[str, str | None] = {}
    for name in [name for name, _ in pairs] + extra:
        # An inherited variable (`__NAME`) is read by its bare name, as the dialplan does.
        reply = session._exchange(f"GET VARIABLE {name.lstrip('_')}").rstrip("\n")
        if parse_result(reply) != "1":
            held[name] = None
            continue
        # "200 result=1 (VALUE)": the value runs to the last ")" of the line.
        held[name] = reply[reply.index("(") + 1:reply.rindex(")")]
    return held


def main(directory: str) -> int:
    from agi.process_agi import _session

    folder = Path(directory)
    spec = json.loads((folder / VALUES_FILE).read_text())
    session = _session()
    if session is None:
        return 1
    held = probe(session, [tuple(pair) for pair in spec["pairs"]], spec["extra"])
    (folder / RESULT_FILE).write_text(json.dumps(held))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

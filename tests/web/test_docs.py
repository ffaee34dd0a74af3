"""docs/api.md's curl examples, run as written against a real callroute-web.

Each ```sh block runs, in order, in one bash session (variables carry over); the lines
of a block starting with "# " are its expected output, exactly.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.harness.web import WebServer
from tests.web.conftest import PASSWORD, People

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)
MARK = "@@@ block"


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_the_doc_has_examples() -> None:
    assert len(blocks()) >= 6


def test_curl_examples_run_as_documented(web_server: WebServer, people: People,
                                         extensions: None) -> None:
    script = "\n".join(f"echo '{MARK} {n}'\n{block}" for n, block in enumerate(blocks()))
    proc = subprocess.run(["/bin/bash", "-u", "-c", script], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "BASE": web_server.url,
                                           "ADMIN_PASSWORD": PASSWORD,
                                           "EVE_PASSWORD": PASSWORD})
    assert proc.stderr == "", proc.stderr
    outputs = proc.stdout.split(f"{MARK} ")[1:]
    for number, block in enumerate(blocks()):
        expected = [line[2:] for line in block.splitlines() if line.startswith("# ")]
        got = outputs[number].split("\n", 1)[1].splitlines()
        assert got == expected, f"example {number}:\n{block}"

"""`callroute-agi`: the process-per-call AGI script Asterisk runs for each call.

pyst2 reads the AGI environment and catches Asterisk's SIGHUP; this adapter does the
quoting and result parsing pyst2 gets wrong, and keeps its debug output off stderr.
"""

import sys

from agi.protocol import AgiSession, ChannelHungUp


class _Discard:
    """A write-only sink for pyst2's unconditional debug output."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


class Pyst2Session(AgiSession):
    def __init__(self, stdin, stdout):
        from asterisk.agi import AGI, AGIHangup

        self._hangup_errors = (AGIHangup,)
        self._agi = AGI(stdin=stdin, stdout=stdout, stderr=_Discard())
        self.env = self._agi.env

    def _exchange(self, command: str) -> str:
        try:
            self._agi.test_hangup()
            self._agi.send_command(command)
            return self._agi.stdin.readline()
        except self._hangup_errors as exc:
            raise ChannelHungUp(str(exc)) from None
        except OSError as exc:  # broken pipe: Asterisk is gone
            raise ChannelHungUp(str(exc)) from None


def main() -> int:
    # Caller ID names arrive as raw bytes in any charset; never die decoding them.
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    try:
        session = Pyst2Session(sys.stdin, sys.stdout)
    except (ChannelHungUp, OSError):
        return 0
    from agi.service import handle_route

    try:
        return handle_route(session, sys.argv[1:2])
    except Exception as exc:  # last resort: a bug must cost one log line, not the call
        try:
            session.verbose(f"callroute: internal error ({type(exc).__name__})", 1)
        except Exception:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())

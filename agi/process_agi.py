"""`callroute-agi` and `callroute-feature`: the process AGI scripts Asterisk runs per request.

pyst2 reads the AGI environment and catches Asterisk's SIGHUP; this adapter does the
quoting and result parsing pyst2 gets wrong, and keeps its debug output off stderr.
"""

import signal
import sys
from collections.abc import Callable

from agi.protocol import AgiSession, ChannelHungUp

# Asterisk may send SIGHUP before pyst2 installs its handler; by default that would
# kill us mid-start with a non-zero status. Note it, and hand it to pyst2 later.
_early_hangup: list[int] = []
signal.signal(signal.SIGHUP, lambda signum, _frame: _early_hangup.append(signum))


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
        if _early_hangup:
            self._agi._got_sighup = True
        self.env = self._agi.env

    def _send(self, command: str) -> None:
        try:
            self._agi.test_hangup()
            self._agi.send_command(command)
        except self._hangup_errors as exc:
            raise ChannelHungUp(str(exc)) from None
        except OSError as exc:  # broken pipe: Asterisk is gone
            _discard_unsent_output(self._agi.stdout)
            raise ChannelHungUp(str(exc)) from None

    def _readline(self) -> str:
        try:
            return self._agi.stdin.readline()
        except OSError as exc:
            raise ChannelHungUp(str(exc)) from None


def _discard_unsent_output(stream) -> None:
    """Point `stream`'s descriptor at /dev/null once Asterisk has closed the pipe.

    Otherwise the command still buffered in it is flushed again at exit, and Python
    prints "Exception ignored ... BrokenPipeError" to stderr and exits with status 120.
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _session() -> Pyst2Session | None:
    # Caller ID names arrive as raw bytes in any charset; never die decoding them.
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    try:
        return Pyst2Session(sys.stdin, sys.stdout)
    except (ChannelHungUp, OSError):
        return None


def _guarded(session: Pyst2Session, handle: Callable[[], object]) -> int:
    try:
        handle()
    except Exception as exc:  # last resort: a bug must cost one log line, not the call
        try:
            session.verbose(f"callroute: internal error ({type(exc).__name__})", 1)
        except Exception:
            pass
    return 0


def main() -> int:
    """`callroute-agi EXT`: route one call."""
    session = _session()
    if session is None:
        return 0
    from agi.service import handle_route

    return _guarded(session, lambda: handle_route(session, sys.argv[1:2]))


def feature_main() -> int:
    """`callroute-feature ACTION EXT [DIGITS]`: a feature code dialled on a desk phone."""
    session = _session()
    if session is None:
        return 0
    from agi.features import handle_feature

    return _guarded(session, lambda: handle_feature(session, sys.argv[1:4]))


if __name__ == "__main__":
    sys.exit(main())

"""The dialplan contract: channel variable names and values, defined once.

`dialplan/callroute.conf` reads exactly these names; tests import them from here.
"""

STATUS = "CALLROUTE_STATUS"
MODE = "CALLROUTE_MODE"
DIAL = "CALLROUTE_DIAL"
TARGET = "CALLROUTE_TARGET"
CONFIRM = "CALLROUTE_CONFIRM"
CALLERID = "CALLROUTE_CALLERID"
DIVERSION = "CALLROUTE_DIVERSION"
MAILBOX = "CALLROUTE_MAILBOX"
REASON = "CALLROUTE_REASON"
# The trunk template ({number} marks the E.164 number), for the external-leg context.
TRUNK = "CALLROUTE_TRUNK"

# The order in which the agent sets them. STATUS goes last, so a dialplan that
# sees a STATUS knows every other variable of the same decision is in place.
ALL = (MODE, DIAL, TARGET, CONFIRM, CALLERID, DIVERSION, MAILBOX, TRUNK, REASON, STATUS)

STATUS_OK = "OK"
STATUS_FALLBACK = "FALLBACK"
STATUS_INVALID = "INVALID"

MODE_FORWARD = "FORWARD"
MODE_RING = "RING"
MODE_VOICEMAIL = "VOICEMAIL"

# Every external leg is dialled through a Local channel into this context, so
# its caller ID, Diversion and confirmation apply to that leg alone.
EXTERNAL_LEG_CONTEXT = "callroute-external"

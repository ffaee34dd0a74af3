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
# Seconds for the first Dial(); empty leaves the dialplan's CALLROUTE_RING_TIME.
RINGTIME = "CALLROUTE_RINGTIME"
# Conditional forwarding: the leg dialled after the first Dial() ends with one of the
# DIALSTATUS values of NEXT_ON ("-"-separated).
NEXT_DIAL = "CALLROUTE_NEXT_DIAL"
NEXT_ON = "CALLROUTE_NEXT_ON"
# The desk devices alone, dialled instead of DIAL while one of them is in use.
DESKS = "CALLROUTE_DESKS"
# Per-extension confirmation settings; empty leaves the dialplan's globals.
ASK_TRIES = "CALLROUTE_ASK_TRIES"
ASK_TIMEOUT = "CALLROUTE_ASK_TIMEOUT"
ASK_PROMPT = "CALLROUTE_ASK_PROMPT"
# Caller ID an external leg retries with once if the carrier refuses the caller's own.
CALLERID_RETRY = "CALLROUTE_CALLERID_RETRY"
# "1" while forwarding is on with a usable target (published as a device state),
# else empty.
FORWARDING = "CALLROUTE_FORWARDING"
# The language of the prompts on each external leg and before voicemail (fr, fr_FR);
# empty leaves the channel's own language (docs/language.md).
LANGUAGE = "CALLROUTE_LANGUAGE"

# The order in which the agent sets them (only the non-empty ones; the LEG_ALL ones
# go just before STATUS). STATUS goes last, so a dialplan that sees a STATUS knows
# every other variable of the same decision is in place.
ALL = (MODE, DIAL, TARGET, CONFIRM, CALLERID, DIVERSION, MAILBOX, TRUNK, REASON, RINGTIME,
       NEXT_DIAL, NEXT_ON, DESKS, ASK_TRIES, ASK_TIMEOUT, ASK_PROMPT, CALLERID_RETRY,
       FORWARDING, LANGUAGE, STATUS)

# What each external leg (context callroute-external, a Local channel created by the
# caller's Dial) reads: set by the agent in the same MSet, with the `__` prefix so that
# every channel created from the caller's (Local legs, and theirs) inherits them. Sent
# only for a decision that dials an external leg (in DIAL or NEXT_DIAL), and then all
# of them, empty ones included: a hop leg's channel inherits the previous extension's
# values, and its own decision must replace every one.
LEG_TRUNK = "__CALLROUTE_LEG_TRUNK"
LEG_CONFIRM = "__CALLROUTE_LEG_CONFIRM"
LEG_CALLERID = "__CALLROUTE_LEG_CALLERID"
LEG_CALLERID_RETRY = "__CALLROUTE_LEG_CALLERID_RETRY"
LEG_DIVERSION = "__CALLROUTE_LEG_DIVERSION"
LEG_TRIES = "__CALLROUTE_LEG_TRIES"
LEG_TIMEOUT = "__CALLROUTE_LEG_TIMEOUT"
LEG_PROMPT = "__CALLROUTE_LEG_PROMPT"
LEG_LANGUAGE = "__CALLROUTE_LEG_LANGUAGE"
# Why the leg is called: REDIRECTING(reason) on it (Diversion reason).
LEG_REASON = "__CALLROUTE_LEG_REASON"
LEG_ALL = (LEG_TRUNK, LEG_CONFIRM, LEG_CALLERID, LEG_CALLERID_RETRY, LEG_DIVERSION,
           LEG_TRIES, LEG_TIMEOUT, LEG_PROMPT, LEG_LANGUAGE, LEG_REASON)
# Every name the agent may set, in the order it sets them.
SENT = (*ALL[:-1], *LEG_ALL, STATUS)
REASON_FOLLOW_ME = "follow_me"  # RING: the extension's external devices ring with it
REASON_UNCONDITIONAL = "cfu"  # FORWARD: forwarded always

STATUS_OK = "OK"
STATUS_FALLBACK = "FALLBACK"
STATUS_INVALID = "INVALID"

MODE_FORWARD = "FORWARD"
MODE_RING = "RING"
MODE_VOICEMAIL = "VOICEMAIL"

# DIALSTATUS values that trigger conditional forwarding, by forward_when condition.
DIALSTATUS_OFFLINE = "CHANUNAVAIL"
DIALSTATUS_BUSY = "BUSY"
DIALSTATUS_NOANSWER = "NOANSWER"

# Every external leg is dialled through a Local channel into this context, so
# its caller ID, Diversion and confirmation apply to that leg alone:
# Local/<E.164>-<keypress 0|1>-<delay s>-<ring s, 0 = default>@callroute-external/n
EXTERNAL_LEG_CONTEXT = "callroute-external"
# A number that is another extension's DID is not dialled out but handed to that
# extension's own rules: Local/<EXT>@callroute-hop/n (the dialplan caps the hops).
HOP_LEG_CONTEXT = "callroute-hop"

# Feature codes (callroute-feature / FastAGI script "feature").
FEATURE_STATUS = "CALLROUTE_FEATURE_STATUS"
FEATURE_TARGET = "CALLROUTE_FEATURE_TARGET"
FEATURE_ON = "ON"
FEATURE_OFF = "OFF"
FEATURE_REFUSED = "REFUSED"
FEATURE_ERROR = "ERROR"

"""The Redis schema and the dial-string formats, in one place (the public contract).

`<prefix>ext:<EXT>` is a hash per extension, `<prefix>company` the company hash (with
the DID map: one `did:<E.164>` -> extension field per DID), `<prefix>extensions` the
set of configured extensions and `<prefix>audit` the stream of admin changes. The
call path, the store and the admin layer all take names from here, so the schema can
only change in one module. On the call path: nothing heavier than agi.variables.
"""

from agi import variables as v

SCHEMA_VERSION = "1"

# Fields of the extension hash.
F_DEVICES = "devices"
F_EXTERNAL = "external_devices"
F_FORWARD_ENABLED = "forward_enabled"
F_FORWARD_TARGET = "forward_target"
F_FORWARD_WHEN = "forward_when"
F_FORWARD_AFTER = "forward_after"
F_FORWARD_CALLER_ID = "forward_caller_id"
F_REQUIRE_KEYPRESS = "forward_require_keypress"
F_EXTERNALS_DURING_CALLS = "externals_during_calls"
F_CONFIRM_TRIES = "confirm_tries"
F_CONFIRM_TIMEOUT = "confirm_timeout"
F_CONFIRM_PROMPT = "confirm_prompt"
F_MAILBOX = "mailbox"
F_DID = "did"
# Language of the prompts callers and callees hear (overrides the company's).
F_LANGUAGE = "language"
# Written with every extension write: the schema version of the hash.
F_SCHEMA = "schema"
# Fields of the company hash.
F_COMPANY_CALLER_ID = "caller_id"
F_COMPANY_NAME = "name"
F_COMPANY_DID_PREFIX = "did:"
F_COMPANY_LANGUAGE = "language"  # the default of every extension

# Values of forward_caller_id.
CALLER_ID_ORIGINAL = "original"
CALLER_ID_COMPANY = "company"
# The caller's number, and the company number on a retry if the carrier refuses it.
CALLER_ID_ORIGINAL_FALLBACK = "original-fallback"
CALLER_ID_MODES = (CALLER_ID_ORIGINAL, CALLER_ID_COMPANY, CALLER_ID_ORIGINAL_FALLBACK)

# Fields of an audit record (an entry of the audit stream).
A_AT = "at"
A_ACTOR = "actor"
A_SOURCE = "source"
A_EXT = "ext"
A_ACTION = "action"
A_CHANGES = "changes"


def ext_key(prefix: str, ext: str) -> str:
    return f"{prefix}ext:{ext}"


def company_key(prefix: str) -> str:
    return f"{prefix}company"


def index_key(prefix: str) -> str:
    return f"{prefix}extensions"


def audit_key(prefix: str) -> str:
    return f"{prefix}audit"


# Web accounts (agi/accounts.py): `<prefix>user:<NAME>` hash (role, extensions, password
# as argon2id, created), `<prefix>users` set of names, `<prefix>token:<SHA-256 hex>` hash
# (user, expires) with a TTL, `<prefix>credentials:<NAME>` set of that user's token and
# session keys, `<prefix>login-failures:user|addr:<digest>` counters with a TTL.
def user_key(prefix: str, name: str) -> str:
    return f"{prefix}user:{name}"


def users_key(prefix: str) -> str:
    return f"{prefix}users"


def token_key(prefix: str, digest: str) -> str:
    return f"{prefix}token:{digest}"


def credentials_key(prefix: str, name: str) -> str:
    return f"{prefix}credentials:{name}"


def login_failures_key(prefix: str, kind: str, digest: str) -> str:
    return f"{prefix}login-failures:{kind}:{digest}"


def did_field(number: str) -> str:
    """The company-hash field mapping the DID `number` to its extension."""
    return F_COMPANY_DID_PREFIX + number


def mailbox(ext: str, context: str) -> str:
    """The mailbox of `ext` in voicemail `context`, as VoiceMail() takes it."""
    return f"{ext}@{context}"


def external_leg(number: str, keypress: bool, delay: int = 0, ring: int = 0) -> str:
    """The Dial() leg for an external number; the context dials the trunk itself.

    The leg's own settings travel in its extension, so each leg of one Dial() can have
    its own: whether it must press 1, seconds before it starts ringing, seconds it
    rings (0 = the dialplan's default).
    """
    return f"Local/{number}-{int(keypress)}-{delay}-{ring}@{v.EXTERNAL_LEG_CONTEXT}/n"


def hop_leg(ext: str) -> str:
    """The Dial() leg that hands the call to another extension's own rules."""
    return f"Local/{ext}@{v.HOP_LEG_CONTEXT}/n"

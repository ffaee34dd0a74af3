"""Settings from the environment and an optional INI file.

Asterisk admins keep their settings in INI files, while containers pass them in the
environment; both work, and the environment wins. Every value is validated here, once,
so the call path and the CLI can trust a Config they are handed.
"""

import os

from agi.calling_codes import CALLING_CODES
from agi.resp import RedisTarget, RespError

DEFAULT_CONFIG_FILE = "/etc/callroute.conf"
INI_SECTION = "callroute"

# key -> (environment variable, default)
_KEYS = {
    "redis_url": ("CALLROUTE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "country": ("CALLROUTE_COUNTRY", "FR"),
    "trunk_dial": ("CALLROUTE_TRUNK_DIAL", "PJSIP/{number}@carrier"),
    "default_device": ("CALLROUTE_DEFAULT_DEVICE", "PJSIP/{ext}"),
    "timeout_ms": ("CALLROUTE_TIMEOUT_MS", "300"),
    "prefix": ("CALLROUTE_PREFIX", "callroute:"),
    "voicemail_context": ("CALLROUTE_VOICEMAIL_CONTEXT", "default"),
    "audit_max": ("CALLROUTE_AUDIT_MAX", "100000"),
    # callroute-fastagi and callroute-web; their --log-format wins (agi/logfmt.py).
    "log_format": ("CALLROUTE_LOG_FORMAT", "text"),
}
LOG_FORMATS = ("text", "json")
_MAX_TIMEOUT_MS = 10_000
# Bounds of the audit stream's length (records kept).
_AUDIT_MAX = (100, 100_000_000)
# A voicemail.conf context name: what a mailbox's "@context" part may be (agi.guard).
_CONTEXT_MAX = 32


# Where a setting's value came from, as Config.sources holds it: (kind, where), where
# is the environment variable's name, the INI file's path, or "" for the default.
FROM_ENVIRONMENT, FROM_FILE, FROM_DEFAULT = "environment", "file", "default"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the setting, and `key`
    (when one setting is at fault) is its Config field, so `callroute doctor` can say
    where the bad value came from."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


class Config:
    """Validated settings. Plain class with slots: dataclasses cost ~10 ms to import."""

    __slots__ = ("audit_max", "calling_code", "country", "default_device", "log_format",
                 "prefix", "redis_url", "sources", "timeout_ms", "trunk_dial",
                 "voicemail_context")

    def __init__(self, *, redis_url: str, country: str, trunk_dial: str,
                 default_device: str, timeout_ms: int, prefix: str,
                 voicemail_context: str, audit_max: int, log_format: str,
                 sources: dict[str, tuple[str, str]] | None = None):
        self.redis_url = redis_url
        self.country = country
        self.calling_code = CALLING_CODES[country]
        self.trunk_dial = trunk_dial
        self.default_device = default_device
        self.timeout_ms = timeout_ms
        self.prefix = prefix
        self.voicemail_context = voicemail_context
        self.audit_max = audit_max
        self.log_format = log_format
        # field -> (FROM_*, where): set by load(); {} for a Config built by hand.
        self.sources = sources or {}

    def default_device_for(self, ext: str) -> str:
        return self.default_device.replace("{ext}", ext)


def _read_ini(path: str, required: bool) -> dict[str, str]:
    if not os.path.exists(path):
        if required:
            raise ConfigError(f"config file {path} (from CALLROUTE_CONFIG) does not exist")
        return {}
    import configparser  # only when a file exists: keeps the call path lean

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if not parser.has_section(INI_SECTION):
        return {}
    section = parser[INI_SECTION]
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path} [{INI_SECTION}]: {', '.join(unknown)}")
    return dict(section)


def load(environ: dict[str, str] | None = None) -> Config:
    """Build the Config: defaults, then the INI file, then the environment."""
    values, sources = _gather(environ)
    config = _validate(values)
    config.sources = sources
    return config


def sources(environ: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Where each setting comes from, as load() would take it, even when a value is
    invalid (load raises then). ConfigError only when the INI file can't be read."""
    return _gather(environ)[1]


def _gather(environ: dict[str, str] | None) -> tuple[dict[str, str],
                                                     dict[str, tuple[str, str]]]:
    """Every setting's raw value and its source: defaults, the INI file, the environment."""
    env = os.environ if environ is None else environ
    explicit = env.get("CALLROUTE_CONFIG")
    path = explicit or DEFAULT_CONFIG_FILE
    values = {key: default for key, (_, default) in _KEYS.items()}
    origin = dict.fromkeys(_KEYS, (FROM_DEFAULT, ""))
    for key, value in _read_ini(path, required=bool(explicit)).items():
        values[key], origin[key] = value, (FROM_FILE, path)
    for key, (var, _) in _KEYS.items():
        if var in env:
            values[key], origin[key] = env[var], (FROM_ENVIRONMENT, var)
    return values, origin


def _validate(values: dict[str, str]) -> Config:
    country = values["country"].strip().upper()
    if country not in CALLING_CODES:
        raise ConfigError(f"CALLROUTE_COUNTRY {values['country']!r} is not an ISO region code "
                          "such as FR or US", "country")
    trunk = values["trunk_dial"].strip()
    if trunk.count("{number}") != 1 or _has_dial_syntax(trunk.replace("{number}", "")):
        raise ConfigError("CALLROUTE_TRUNK_DIAL must contain {number} exactly once and no "
                          "'&', ',', quotes, spaces or parentheses, e.g. "
                          "PJSIP/{number}@carrier", "trunk_dial")
    device = values["default_device"].strip()
    if device.count("{ext}") != 1 or _has_dial_syntax(device.replace("{ext}", "")):
        raise ConfigError("CALLROUTE_DEFAULT_DEVICE must contain {ext} exactly once and no "
                          "dial syntax, e.g. PJSIP/{ext}", "default_device")
    try:
        timeout_ms = int(values["timeout_ms"])
    except ValueError:
        timeout_ms = -1
    if not 1 <= timeout_ms <= _MAX_TIMEOUT_MS:
        raise ConfigError(f"CALLROUTE_TIMEOUT_MS must be a whole number of milliseconds "
                          f"from 1 to {_MAX_TIMEOUT_MS}", "timeout_ms")
    prefix = values["prefix"].strip()
    if not prefix or _has_dial_syntax(prefix) or "*" in prefix:
        raise ConfigError("CALLROUTE_PREFIX must be non-empty, without spaces or '*'", "prefix")
    url = values["redis_url"].strip()
    if not url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        raise ConfigError("CALLROUTE_REDIS_URL must start with redis://, rediss://, unix:// "
                          "or redis+sentinel://", "redis_url")
    try:
        RedisTarget(url)  # parse it now: a malformed URL is a config error, not a traceback
    except RespError as exc:  # the message never quotes the URL (it may hold a password)
        raise ConfigError(f"CALLROUTE_REDIS_URL is malformed: {exc} (percent-encode a "
                          "password holding '/', '?', '#' or '@')", "redis_url") from None
    context = values["voicemail_context"].strip()
    if not (0 < len(context) <= _CONTEXT_MAX and context.isascii()
            and context.replace("_", "").replace("-", "").isalnum()):
        raise ConfigError(f"CALLROUTE_VOICEMAIL_CONTEXT must be a voicemail.conf context: 1 "
                          f"to {_CONTEXT_MAX} letters, digits, '_' or '-'", "voicemail_context")
    audit_max = values["audit_max"].strip()
    if not (audit_max.isascii() and audit_max.isdigit()
            and _AUDIT_MAX[0] <= int(audit_max) <= _AUDIT_MAX[1]):
        raise ConfigError(f"CALLROUTE_AUDIT_MAX must be a whole number of records from "
                          f"{_AUDIT_MAX[0]} to {_AUDIT_MAX[1]}", "audit_max")
    log_format = values["log_format"].strip().lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"CALLROUTE_LOG_FORMAT must be {' or '.join(LOG_FORMATS)}",
                          "log_format")
    return Config(redis_url=url, country=country, trunk_dial=trunk, default_device=device,
                  timeout_ms=timeout_ms, prefix=prefix, voicemail_context=context,
                  audit_max=int(audit_max), log_format=log_format)


def _has_dial_syntax(text: str) -> bool:
    return any(ch in text for ch in "&,()\"'\\ \t\r\n$") or not text.isprintable()

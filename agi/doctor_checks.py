"""`callroute doctor`'s verdicts: the facts agi/doctor.py gathered in, findings out. No I/O.

Each check is a function of data (the settings and where they came from, what Redis
answered, the stored hashes, a probe's outcome, Asterisk's console output), so every
verdict is tested without a network and the gathering can't bend one. Extensions are
judged by the admin layer's ExtensionView: the very Settings and Route a call gets.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from agi import schema as s
from agi import variables as v
from agi.admin import Refused, checks
from agi.admin.views import ExtensionView
from agi.config import FROM_ENVIRONMENT, FROM_FILE, Config, ConfigError
from agi.guard import is_extension, is_home_e164, is_mailbox
from agi.settings import COMPANY_CALLER_ID
from agi.store import redact_url

OK, WARN, PROBLEM = "ok", "warn", "problem"
# Check names, as findings carry them.
CONFIG, REDIS, SCHEMA, INDEX, EXTENSION, DID_MAP, FASTAGI, ASTERISK = (
    "config", "redis", "schema", "index", "extension", "did-map", "fastagi", "asterisk")
# The contexts dialplan/callroute.conf defines: the include is loaded when all are.
CONTEXTS = ("callroute-inbound", "callroute-voicemail", v.EXTERNAL_LEG_CONTEXT,
            v.HOP_LEG_CONTEXT, "callroute-confirm", "callroute-language",
            "callroute-features", "callroute-feature")
AGI_GLOBAL = "CALLROUTE_AGI"
# What doctor asks Asterisk's console (asterisk -rx), one command per question.
RX_DIALPLAN, RX_GLOBALS, RX_VOICEMAIL = ("dialplan show", "dialplan show globals",
                                         "voicemail show users")
# Number fields whose refusal the admin layer can explain (its own check, its sentence).
_NUMBER_FIELDS = (s.F_FORWARD_TARGET, s.F_DID, COMPANY_CALLER_ID)
_SHOWN_MAX = 80  # characters of a stored value quoted in a sentence


@dataclass(frozen=True)
class Finding:
    level: str  # OK, WARN or PROBLEM
    check: str
    sentence: str
    ext: str = ""
    field: str = ""  # the field to fix (of the extension, or of the company hash)
    reason: str = ""  # for an extension: the call's FALLBACK reason, as REASON carries it
    data: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return {"level": self.level, "check": self.check, "sentence": self.sentence,
                "ext": self.ext, "field": self.field, "reason": self.reason,
                "data": dict(self.data)}


@dataclass(frozen=True)
class RedisFacts:
    rtt_s: float
    version: str
    master: tuple[str, int] | None  # found through Sentinel


@dataclass(frozen=True)
class FastAgiProbe:
    healthy: bool
    rtt_s: float
    failure: str  # what went wrong, as the end of "FastAGI at HOST:PORT ..."


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."


def _source_words(source: tuple[str, str]) -> str:
    kind, where = source
    if kind == FROM_ENVIRONMENT:
        return f"the environment variable {where}"
    if kind == FROM_FILE:
        return f"the file {where}"
    return "the default"


def configuration(config: Config | None, error: ConfigError | None,
                  sources: dict[str, tuple[str, str]]) -> list[Finding]:
    """Every setting and where it came from; or what is invalid, and where that came from.
    The Redis URL is shown redacted: it may hold a password (Sentinel's too)."""
    if error is not None or config is None:
        where = f" (set by {_source_words(sources[error.key])})" \
            if error is not None and error.key in sources else ""
        return [Finding(PROBLEM, CONFIG, f"The configuration is invalid: {error}{where}; "
                        "nothing else that needs it can be checked.",
                        field=getattr(error, "key", ""))]
    found = []
    for key, source in sources.items():
        value = getattr(config, key)
        shown = redact_url(value) if key == "redis_url" else str(value)
        found.append(Finding(OK, CONFIG, f"{key} is {shown}, from {_source_words(source)}.",
                             field=key, data={"value": shown, "source": source[0],
                                              "from": source[1]}))
    return found


def redis(url: str, facts: RedisFacts | None, error: str, timeout_ms: int) -> list[Finding]:
    where = redact_url(url)
    if facts is None:
        return [Finding(PROBLEM, REDIS, f"{error[:1].upper()}{error[1:]}. Until Redis "
                        "answers, every call falls back to ringing the extension's default "
                        "phone.", data={"url": where})]
    ms = facts.rtt_s * 1000
    master = f"; Sentinel names {facts.master[0]}:{facts.master[1]} as the master" \
        if facts.master else ""
    data = {"url": where, "rtt_ms": round(ms, 2), "version": facts.version,
            "master": f"{facts.master[0]}:{facts.master[1]}" if facts.master else None}
    sentence = f"Redis at {where} answered in {ms:.1f} ms (Redis {facts.version}){master}."
    if ms > timeout_ms / 2:
        return [Finding(WARN, REDIS, f"{sentence[:-1]}: slow, since a call waits at most "
                        f"timeout_ms = {timeout_ms} ms for Redis before it falls back.",
                        data=data)]
    return [Finding(OK, REDIS, sentence, data=data)]


def schema_versions(hashes: dict[str, dict[str, str]]) -> list[Finding]:
    """Every extension hash carries the schema version of the write that made it."""
    found = []
    for ext, fields in hashes.items():
        stored = fields.get(s.F_SCHEMA)
        if stored is None:
            found.append(Finding(
                WARN, SCHEMA, f"Extension {ext} has no schema version: it was written "
                f"without the admin layer (by hand, or by a callroute older than schema "
                f"versions). Fix the other findings, then 'callroute ext add {ext}' "
                f"rewrites it.", ext=ext, field=s.F_SCHEMA))
        elif stored != s.SCHEMA_VERSION:
            found.append(Finding(
                PROBLEM, SCHEMA, f"Extension {ext} has schema version {_shown(stored)}, "
                f"but this callroute reads version {s.SCHEMA_VERSION}: another callroute "
                "version wrote it, and calls may misread it. Run one callroute version "
                "everywhere.", ext=ext, field=s.F_SCHEMA, data={"stored": stored}))
    if found or not hashes:
        return found
    return [Finding(OK, SCHEMA, f"Every extension ({len(hashes)}) is at schema version "
                    f"{s.SCHEMA_VERSION}.")]


def unreadable(url: str, error: str) -> list[Finding]:
    """Redis answered, but the stored settings could not be read (nothing else is
    judged then)."""
    return [Finding(PROBLEM, REDIS, f"Redis answered, but callroute {error}. Calls that need "
                    "what it can't read fall back to ringing the extension's default phone.",
                    data={"url": redact_url(url)})]


def index(listed: list[str], stored: list[str], prefix: str,
          wrong_types: dict[str, str]) -> list[Finding]:
    """The set of extensions against the hashes: what the CLI lists is what calls read.
    `wrong_types`: listed extensions whose key is not a hash, and its type."""
    name = s.index_key(prefix)
    found = [Finding(WARN, INDEX, f"Extension {ext} is stored but missing from the "
                     f"extensions index ({name}): calls to it use its settings, but "
                     f"'callroute ext list' and the Office Manager don't show it. "
                     f"'callroute ext add {ext}' adds it.", ext=ext)
             for ext in stored if ext not in listed]
    found += [Finding(PROBLEM, INDEX, f"Extension {ext}'s key ({s.ext_key(prefix, ext)}) "
                      f"holds a Redis {_shown(kind)}, not a hash: something other than "
                      "callroute wrote it. Calls to it ring its default phone, and 'callroute "
                      f"ext list' and the Office Manager leave it out. 'callroute ext add "
                      f"{ext}' replaces it.", ext=ext, data={"type": kind})
              for ext, kind in wrong_types.items()]
    found += [Finding(WARN, INDEX, f"Extension {ext} is in the extensions index ({name}) "
                      f"but has no settings: calls to it ring its default phone. Remove it "
                      f"from the index (SREM {name} {ext}) or add it again.", ext=ext)
              for ext in listed if ext not in stored and ext not in wrong_types]
    return found


def _hint(fld: str, stored: object, config: Config) -> str:
    """Why the admin layer would refuse a stored number ("" if it would take it)."""
    if fld not in _NUMBER_FIELDS or not isinstance(stored, str):
        return ""
    try:
        checks.number(stored, config, fld)
    except Refused as exc:
        return str(exc)
    return ""


def extensions(views: list[ExtensionView], config: Config) -> list[Finding]:
    """Each extension whose calls FALLBACK, one finding per field to fix; a stored value
    that calls ignore for now (a target while forwarding is off) is a warning."""
    found = []
    for view in views:
        fallback = view.status == v.STATUS_FALLBACK
        for entry in view.corrupt:
            hint = _hint(entry.field, entry.stored, config)
            why = f" (the admin layer refuses it: {hint})" if hint else ""
            if fallback:
                instead = "calls ignore it" if entry.used in ("", None, []) \
                    else f"calls use {_shown(entry.used)} instead"
                sentence = (f"Extension {view.extension}: calls FALLBACK ({view.problems}). "
                            f"Fix {entry.field}: stored {_shown(entry.stored)}{why}; "
                            f"{instead}.")
            else:
                sentence = (f"Extension {view.extension}: {entry.field} {_shown(entry.stored)}"
                            f" can't be used{why}; calls don't use it now, but would "
                            "FALLBACK once forwarding is on.")
            found.append(Finding(PROBLEM if fallback else WARN, EXTENSION, sentence,
                                 ext=view.extension, field=entry.field, reason=view.problems,
                                 data={"stored": entry.stored, "used": entry.used,
                                       "status": view.status}))
        if fallback and not view.corrupt:
            found.append(Finding(PROBLEM, EXTENSION, f"Extension {view.extension}: calls "
                                 f"FALLBACK ({view.problems}).", ext=view.extension,
                                 reason=view.problems, data={"status": view.status}))
    if not found and views:
        found.append(Finding(OK, EXTENSION, f"Every extension ({len(views)}) routes as "
                             "configured: no call would FALLBACK."))
    return found


def did_map(hashes: dict[str, dict[str, str]], company: dict[str, str],
            config: Config) -> list[Finding]:
    """The company's DID map (did:<number> -> extension) against the extensions' DIDs:
    each must point at the other. A corrupt DID is the extension check's finding."""
    name = s.company_key(config.prefix)
    found = []
    mapped = {key.removeprefix(s.F_COMPANY_DID_PREFIX): owner for key, owner in company.items()
              if key.startswith(s.F_COMPANY_DID_PREFIX)}
    for number, owner in mapped.items():
        entry = s.did_field(number)
        remove = f"Remove the field {entry} from {name}"
        if not is_extension(owner):
            found.append(Finding(
                PROBLEM, DID_MAP, f"The company's DID map gives {number} to {_shown(owner)}, "
                f"which is not an extension: calls forwarded to {number} FALLBACK. {remove}.",
                field=entry))
        elif not hashes.get(owner):
            found.append(Finding(
                PROBLEM, DID_MAP, f"The company's DID map sends {number} to extension "
                f"{owner}, which does not exist: calls forwarded to {number} ring its default "
                f"phone. Recreate it ('callroute ext add {owner} --did {number}') or "
                f"{remove[0].lower()}{remove[1:]}.", ext=owner, field=entry))
        elif hashes[owner].get(s.F_DID) != number:
            theirs = hashes[owner].get(s.F_DID) or "none"
            found.append(Finding(
                PROBLEM, DID_MAP, f"The company's DID map sends {number} to extension "
                f"{owner}, whose DID is {theirs}: the map is out of step. {remove}.",
                ext=owner, field=entry))
    for ext, fields in hashes.items():
        did = fields.get(s.F_DID, "")
        if not is_home_e164(did, config.calling_code) or mapped.get(did) == ext:
            continue
        elsewhere = mapped.get(did)
        where = f"gives it to extension {elsewhere}" if elsewhere else "has no entry for it"
        found.append(Finding(
            PROBLEM, DID_MAP, f"Extension {ext}'s DID {did} is not mapped back: the "
            f"company's DID map {where}, so a call forwarded to it from another extension "
            f"doesn't reach extension {ext}'s rules. 'callroute ext add {ext} --did {did}' "
            "rewrites the map.", ext=ext, field=s.F_DID))
    if found or not mapped:
        return found
    return [Finding(OK, DID_MAP, f"The DID map and the extensions' DIDs agree ({len(mapped)} "
                    f"DID{'s' if len(mapped) != 1 else ''}).")]


def fastagi(address: tuple[str, int], probe: FastAgiProbe) -> list[Finding]:
    where = f"{address[0]}:{address[1]}"
    data = {"address": where}
    if probe.healthy:
        ms = probe.rtt_s * 1000
        return [Finding(OK, FASTAGI, f"FastAGI at {where} answered its health script in "
                        f"{ms:.1f} ms.", data={**data, "rtt_ms": round(ms, 2)})]
    return [Finding(PROBLEM, FASTAGI, f"FastAGI at {where} {probe.failure}: calls routed "
                    "through it get the dialplan's agent-failed path (the default phone).",
                    data=data)]


def asterisk(command: str, outputs: dict[str, str], failure: str,
             mailboxes: dict[str, list[str]]) -> list[Finding]:
    """The dialplan include, CALLROUTE_AGI and the extensions' mailboxes, from the
    console's answers to RX_DIALPLAN, RX_GLOBALS and RX_VOICEMAIL."""
    if failure:
        return [Finding(PROBLEM, ASTERISK, f"Asterisk's console does not answer "
                        f"('{command} -rx'): {failure}.", data={"command": command})]
    found = []
    loaded = outputs[RX_DIALPLAN]
    missing = [ctx for ctx in CONTEXTS if f"[ Context '{ctx}'" not in loaded]
    if missing:
        found.append(Finding(PROBLEM, ASTERISK, f"The dialplan lacks callroute's context(s) "
                             f"{', '.join(missing)}: include dialplan/callroute.conf in "
                             "extensions.conf, then 'dialplan reload'.",
                             data={"missing": missing}))
    else:
        found.append(Finding(OK, ASTERISK, f"The dialplan has callroute's {len(CONTEXTS)} "
                             "contexts."))
    agi = _globals(outputs[RX_GLOBALS]).get(AGI_GLOBAL, "")
    if agi:
        found.append(Finding(OK, ASTERISK, f"{AGI_GLOBAL} is {agi}.", data={"value": agi}))
    else:
        found.append(Finding(PROBLEM, ASTERISK, f"The dialplan global {AGI_GLOBAL} is not "
                             "set: every call takes the agent-failed path. Set it in "
                             "[globals] (the agent's path, or agi://HOST:PORT/route).",
                             field=AGI_GLOBAL))
    boxes = _mailboxes(outputs[RX_VOICEMAIL])
    absent = {box: exts for box, exts in mailboxes.items() if box not in boxes}
    for box, exts in absent.items():
        for ext in exts:
            found.append(Finding(PROBLEM, ASTERISK, f"Extension {ext}'s mailbox {box} does "
                                 "not exist in voicemail.conf: unanswered calls can't leave "
                                 "a message. Add it there, or set another mailbox ('callroute "
                                 f"ext add {ext} --mailbox BOX@CONTEXT').", ext=ext,
                                 field=s.F_MAILBOX, data={"mailbox": box}))
    if mailboxes and not absent:
        found.append(Finding(OK, ASTERISK, f"Every mailbox the extensions use "
                             f"({len(mailboxes)}) exists."))
    return found


def _globals(text: str) -> dict[str, str]:
    """`dialplan show globals`: one `   NAME=value` line per global."""
    pairs = (line.strip().partition("=") for line in text.splitlines())
    return {name: value for name, eq, value in pairs if eq and name.isidentifier()}


def _mailboxes(text: str) -> set[str]:
    """`voicemail show users`: a header, `CONTEXT MBOX USER... ZONE NEWMSG` lines (the
    message count last), then `N voicemail users configured.`"""
    boxes = set()
    for line in text.splitlines()[1:]:
        words = line.split()
        box = s.mailbox(words[1], words[0]) if len(words) >= 3 and words[-1].isdigit() \
            else ""
        if is_mailbox(box):
            boxes.add(box)
    return boxes

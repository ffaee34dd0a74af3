"""The audit trail: one record per admin write, in the same MULTI as the change.

A record says when, who (actor and source), which extension ("" for the company), the
action, and the changes as {stored field: [old, new]} (None for absent). The stream is
capped at CALLROUTE_AUDIT_MAX records (approximately: Redis trims whole nodes).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from agi import schema as s
from agi.admin.inputs import Actor
from agi.admin.views import AuditRecord
from agi.store import AdminStore, Audit

EXT_PUT = "ext.put"
EXT_UPDATE = "ext.update"
EXT_REMOVE = "ext.remove"
FORWARDING_SET = "forwarding.set"
FORWARDING_TOGGLE = "forwarding.toggle"
DEVICE_PUT = "device.put"
DEVICE_UPDATE = "device.update"
DEVICE_REMOVE = "device.remove"
COMPANY_SET = "company.set"
# Accounts of the Office Manager and the API (agi/accounts.py); never a password.
USER_ADD = "user.add"
USER_REMOVE = "user.remove"
USER_PASSWORD = "user.password"

# Records fetched per round trip while looking for one extension's.
_PAGE = 200


def recorder(actor: Actor, action: str, ext: str) -> Audit:
    """The store's audit callback for one write: the record, given the hash before and
    after (None: deleted)."""
    def record(old: dict[str, str], new: dict[str, str] | None) -> dict[str, str]:
        after = new or {}
        changes = {key: [old.get(key), after.get(key)]
                   for key in sorted(set(old) | set(after))
                   if key != s.F_SCHEMA and old.get(key) != after.get(key)}
        return {s.A_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
                s.A_ACTOR: actor.name, s.A_SOURCE: actor.source, s.A_EXT: ext,
                s.A_ACTION: action, s.A_CHANGES: json.dumps(changes, separators=(",", ":"))}
    return record


def read_audit(store: AdminStore, *, ext: str | None = None,
               limit: int = 50) -> list[AuditRecord]:
    """The newest `limit` records (of `ext` only, if given), newest first."""
    records: list[AuditRecord] = []
    before = ""
    while len(records) < limit:
        page = store.read_audit(limit if ext is None else _PAGE, before)
        for record_id, fields in page:
            if ext is None or fields.get(s.A_EXT) == ext:
                records.append(_record(record_id, fields))
        if len(page) < (limit if ext is None else _PAGE):
            break
        before = page[-1][0]
    return records[:limit]


def _record(record_id: str, fields: dict[str, str]) -> AuditRecord:
    try:
        changes = json.loads(fields.get(s.A_CHANGES, "{}"))
    except ValueError:
        changes = {}
    return AuditRecord(id=record_id, at=fields.get(s.A_AT, ""),
                       actor=fields.get(s.A_ACTOR, ""), source=fields.get(s.A_SOURCE, ""),
                       ext=fields.get(s.A_EXT, ""), action=fields.get(s.A_ACTION, ""),
                       changes=changes if isinstance(changes, dict) else {})

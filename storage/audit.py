"""The audit trail: who did what, when, to which ticket (Redis Streams).

Every operator command (run or refused), every state change and every staff registration or
binding is one XADD to ``<ns>:audit``; when it concerns a ticket, the same entry also goes to
``<ns>:ticket:<no>:audit``, which is that ticket's timeline. Both streams are capped with
``MAXLEN ~`` (approximate trimming is O(1)); the per-ticket stream is what a ticket's history
relies on, so trimming the global one never loses it.

Entries are flat strings: ``at`` (our clock, seconds), ``actor`` (a staff id such as ``S001``,
``consumer``, ``merchant``, ``system`` or ``cli:<user>``), ``action`` (``take``, ``state``,
``note``, ``refused``, ``bind``, …), ``detail`` (free text), ``no`` (ticket or ""), plus
optional extras such as ``name`` (the actor's display name at the time) and ``result``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import redis

from bot import defaults
from storage.keys import Keys


class Audit:
    def __init__(self, r: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time,
                 maxlen: int = defaults.AUDIT_MAXLEN, ticket_maxlen: int = defaults.AUDIT_TICKET_MAXLEN):
        self.r = r
        self.keys = keys
        self.clock = clock
        self.maxlen = maxlen
        self.ticket_maxlen = ticket_maxlen

    def record(self, no: str | None, actor: str, action: str, detail: str = "", pipeline: Any = None,
               **extra: Any) -> None:
        """Append one entry; with ``pipeline`` it commits together with the change it describes."""
        fields = {"at": f"{self.clock():.3f}", "actor": actor or "?", "action": action, "detail": detail or "",
                  "no": no or ""}
        fields.update({k: str(v) for k, v in extra.items() if v not in (None, "")})
        target = pipeline if pipeline is not None else self.r.pipeline()  # both streams or neither
        target.xadd(self.keys.audit(), fields, maxlen=self.maxlen, approximate=True)
        if no:
            target.xadd(self.keys.ticket_audit(no), fields, maxlen=self.ticket_maxlen, approximate=True)
        if pipeline is None:
            target.execute()

    def timeline(self, no: str) -> list[dict[str, Any]]:
        """The ticket's entries, oldest first."""
        return [_entry(entry_id, fields) for entry_id, fields in self.r.xrange(self.keys.ticket_audit(no))]

    def recent(self, count: int = 50) -> list[dict[str, Any]]:
        """The newest ``count`` entries of the whole service, newest first."""
        return [_entry(entry_id, fields) for entry_id, fields in self.r.xrevrange(self.keys.audit(), count=count)]


def _entry(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = dict(fields)
    entry["id"] = entry_id
    entry["at"] = float(fields.get("at") or 0)
    for name in ("actor", "action", "detail", "no"):
        entry.setdefault(name, "")
    return entry

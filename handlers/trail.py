"""A ticket session that also writes the audit trail of the state change it made.

``audited_session`` is ``common.ticket_session`` plus one thing: when the body changed the
ticket's state, an ``action=state`` entry ("accepted → mediating") goes into the same
MULTI/EXEC as the ticket itself, so the trail can never miss or invent a change.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from flows.mediation import Ticket
from handlers.base import Context
from handlers.common import ticket_session


@contextmanager
def audited_session(ctx: Context, no: str, actor: str, name: str = "") -> Iterator[tuple[Ticket, Any]]:
    with ticket_session(ctx, no) as (ticket, pipe):
        before = ticket.state
        yield ticket, pipe
        if ticket.state != before:
            ctx.audit.record(ticket.no, actor, "state", f"{before} → {ticket.state}", pipeline=pipe, name=name)

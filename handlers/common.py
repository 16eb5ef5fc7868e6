"""Steps on a ticket shared by consumer, merchant and operator handlers."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator

from flows.mediation import ROLE_LABELS, Ticket, fire
from handlers.base import Context
from storage.store import CHINA

RATING_PROMPT = "请为本次调解服务打分：回复 1～5（5 分最满意）；不想评价请回复“跳过”。"


class Busy(Exception):
    """Someone else is changing this ticket right now and did not finish in time."""


class NoSuchTicket(Exception):
    pass


@contextmanager
def ticket_session(ctx: Context, no: str) -> Iterator[tuple[Ticket, Any]]:
    """Lock the ticket, read it, let the caller change it, write it back in one transaction.

    The read happens after the lock (aiogram #1317): three parties write the same ticket
    from different worker processes. If the body raises, nothing is written.
    """
    lock_key = ctx.store.keys.ticket_lock(no)
    token, fields = ctx.store.lock_and_read(lock_key, ctx.store.keys.ticket(no))
    if token is None:
        raise Busy(no)
    released = False
    try:
        if not fields:
            raise NoSuchTicket(no)
        ticket = Ticket.from_fields(fields)
        pipe = ctx.store.pipeline()
        yield ticket, pipe
        from handlers import clocks  # handlers.clocks builds on this module

        clocks.sync(ctx, ticket, pipe)  # deadlines follow the state, in the same MULTI/EXEC
        ctx.store.save_ticket(ticket, pipe)
        # Released inside the same MULTI/EXEC as the write: one round trip, and no moment
        # where the new state is written but another request still sees the lock as ours.
        ctx.store.release(lock_key, token, pipeline=pipe)
        pipe.execute()
        released = True
    finally:
        if not released:
            ctx.store.release(lock_key, token)


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else "****"


def clock_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA).strftime("%m月%d日 %H:%M")


def relay(ctx: Context, ticket: Ticket, role: str, text: str, pipe: Any) -> None:
    """Pass one party's words to the other two, labelled, and keep them in the transcript."""
    label = ROLE_LABELS[role]
    ctx.store.append_transcript(ticket.no, role, text, pipeline=pipe)
    for other_role, openid in (("consumer", ticket.consumer), ("merchant", ticket.merchant),
                               ("mediator", ticket.mediator)):
        if other_role != role and openid:
            ctx.send(openid, f"【{label}】{text}", kind="relay", ticket=ticket.no)


def vote(ctx: Context, ticket: Ticket, role: str, agrees: bool, pipe: Any) -> str:
    """A party answered the proposal with 同意 / 不同意."""
    label = ROLE_LABELS[role]
    if not agrees:
        fire(ticket, "decline")
        ctx.store.append_transcript(ticket.no, role, "不同意调解方案", pipeline=pipe, event="decline")
        for openid in {ticket.consumer, ticket.merchant, ticket.mediator} - {_openid(ticket, role)}:
            ctx.send(openid, f"【{label}】不同意调解方案，调解继续。", kind="proposal", ticket=ticket.no)
        return "已记录您不同意该方案，调解员会继续协调。"
    if role not in ticket.agreed:
        ticket.agreed.append(role)
    # Written at once, not in the pipeline: the settlement record below reads the transcript
    # and must include this answer. A transcript line is a log of what was said, so writing
    # it even if the rest of the request failed is harmless.
    ctx.store.append_transcript(ticket.no, role, "同意调解方案", event="agree")
    fire(ticket, "agree")
    if ticket.state == "settled":
        settle(ctx, ticket, pipe)
        if role == "consumer":
            return f"双方均已同意，调解成功！\n【协议】{ticket.proposal}\n\n{RATING_PROMPT}"
        return f"双方均已同意，调解成功！\n【协议】{ticket.proposal}"
    for openid in {ticket.consumer, ticket.merchant, ticket.mediator} - {_openid(ticket, role)}:
        ctx.send(openid, f"【{label}】已同意调解方案，等待另一方确认。", kind="proposal", ticket=ticket.no)
    return "已记录您同意该方案，正在等待另一方确认。"


def settle(ctx: Context, ticket: Ticket, pipe: Any) -> None:
    """Both sides agreed: keep the settlement record and tell everyone."""
    ticket.settled_at = ctx.now()
    transcript = ctx.store.transcript(ticket.no)
    record = {
        "no": ticket.no,
        "terms": ticket.proposal,
        "settled_at": ticket.settled_at,
        "unit": ticket.unit,
        "parties": {
            "consumer": {"openid": ticket.consumer, "phone": mask_phone(ticket.phone)},
            "merchant": {"openid": ticket.merchant, "name": ticket.merchant_name},
            "mediator": {"openid": ticket.mediator},
        },
        "agreed_by": list(ticket.agreed),
        "transcript": transcript,
    }
    ctx.store.save_settlement(ticket.no, record, pipeline=pipe)
    ctx.store.append_transcript(ticket.no, "system", f"调解成功，协议：{ticket.proposal}", pipeline=pipe,
                                event="settled")
    text = f"工单 {ticket.no} 调解成功。\n【协议】{ticket.proposal}\n请双方按协议履行。"
    ctx.send(ticket.mediator, text, kind="result", ticket=ticket.no)
    ctx.send(ticket.merchant, text, kind="result", ticket=ticket.no)
    ctx.send(ticket.consumer, f"{text}\n\n{RATING_PROMPT}", kind="result", ticket=ticket.no)


def _openid(ticket: Ticket, role: str) -> str:
    return {"consumer": ticket.consumer, "merchant": ticket.merchant, "mediator": ticket.mediator}[role]


def ticket_line(ticket: Ticket, unit_name: str) -> str:
    from handlers.texts import STATE_NAMES

    return f"{ticket.no}｜{STATE_NAMES.get(ticket.state, ticket.state)}｜{unit_name}｜{ticket.merchant_name}"

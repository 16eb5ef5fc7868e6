"""Who said what → which flow.

``dispatch`` decides the sender's role for this message (staff by directory, merchant by
the ticket they joined, everyone else a consumer), runs the one handler that owns it and
turns a refused step into a Chinese answer instead of an exception.
"""

from __future__ import annotations

import logging

from flows.mediation import NotAllowed
from handlers import consumer, merchant, operator, texts
from handlers.base import Context, Incoming
from handlers.common import Busy, NoSuchTicket

log = logging.getLogger(__name__)

# Event name → handler; wechatpy rewrites a QR "subscribe" to "subscribe_scan".
EVENT_HANDLERS = {}


def on_event(*names: str):
    def register(func):
        for name in names:
            EVENT_HANDLERS[name] = func
        return func

    return register


@on_event("subscribe", "subscribe_scan", "scan")
def _followed_or_scanned(ctx: Context, msg: Incoming) -> str:
    code = merchant.code_from_scene(msg.event_key)
    if code:
        return merchant.join(ctx, msg.openid, code)
    return texts.WELCOME


@on_event("click")
def _menu_click(ctx: Context, msg: Incoming) -> str:
    if msg.event_key.upper() in {"MY_TICKETS", "QUERY"}:
        return consumer.list_tickets(ctx, msg.openid)
    return texts.WELCOME


def dispatch(ctx: Context, msg: Incoming) -> str | None:
    """The passive reply for the sender (None or "" = none); other parties go to ctx.outbox."""
    try:
        return _route(ctx, msg)
    except NotAllowed as exc:
        ctx.outbox.clear()  # a refused step sends nothing to anyone
        return str(exc)
    except NoSuchTicket as exc:
        ctx.outbox.clear()
        return f"找不到工单 {exc}。"
    except Busy:
        ctx.outbox.clear()
        return texts.BUSY


def _route(ctx: Context, msg: Incoming) -> str | None:
    if msg.kind == "event":
        handler = EVENT_HANDLERS.get(msg.event)
        return handler(ctx, msg) if handler else None

    member = ctx.directory.staff.get(msg.openid)
    text = msg.text.strip()
    if member and text.startswith("/"):
        return operator.run(ctx, member, msg)

    code = merchant.invite_code_in(text) if msg.kind == "text" else None
    if code and ctx.store.resolve_invite(code):
        return merchant.join(ctx, msg.openid, code)

    user = ctx.store.load_user(msg.openid)
    if member and user.get("mediating") and msg.kind == "text":
        reply = operator.talk(ctx, member, msg, user["mediating"])
        if reply is not None:
            return reply
    if user.get("merchant_of"):
        reply = merchant.handle(ctx, msg, user["merchant_of"])
        if reply is not None:
            return reply
    if code and not user.get("intake") and not user.get("ticket"):
        return texts.INVITE_UNKNOWN
    return consumer.handle(ctx, msg)

"""Who said what → which flow.

``dispatch`` decides the sender's role for this message (staff by ``Directory.staff_for``,
merchant by the ticket they joined, everyone else a consumer), runs the one handler that owns
it and turns a refused step into a Chinese answer instead of an exception.

A line starting with "/" is an operator command only for staff (``operator.execute`` checks
the role); from anyone else it gets a plain Chinese answer and nothing else happens.
``绑定 <code>`` binds the sender's WeChat to a staff record registered with ``staff add``, or
to a merchant contact registered with ``merchant add`` (issue 5).
"""

from __future__ import annotations

import logging

from flows.mediation import NotAllowed
from handlers import consumer, merchant, merchant_first, operator, texts
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

    text = msg.text.strip() if msg.kind == "text" else ""
    if msg.kind == "text" and text in ("绑定", "綁定"):  # the code is missing: say so, start nothing
        return "请在“绑定”后面加上管理员给您的绑定码，例如：绑定 12345678"
    bind_code = operator.bind_code_in(text)
    if bind_code:
        # A merchant contact's code (issue 5) first: it is a plain lookup; a staff code counts failures.
        return merchant_first.bind_contact(ctx, msg.openid, bind_code) or operator.bind(ctx, msg.openid, bind_code)
    staff = ctx.directory.staff_for(msg.openid)
    if text.startswith(operator.SLASHES):
        if staff is not None:
            return operator.execute(ctx, staff, text)
        # Not staff: no command runs, nothing is relayed, no complaint is started.
        log.info("slash command from a non-staff sender answered and ignored: %r", text[:40])
        return operator.NOT_STAFF

    code = merchant.invite_code_in(text) if msg.kind == "text" else None
    if code and ctx.store.resolve_invite(code):
        return merchant.join(ctx, msg.openid, code)

    user = ctx.store.load_user(msg.openid)
    if staff is not None and user.get("mediating") and msg.kind == "text":
        reply = operator.talk(ctx, staff, msg, user["mediating"])
        if reply is not None:
            return reply
    if user.get("merchant_of"):
        reply = merchant.handle(ctx, msg, user["merchant_of"])
        if reply is not None:
            return reply
    if code and not user.get("intake") and not user.get("ticket"):
        return texts.INVITE_UNKNOWN
    if staff is not None and not user.get("intake") and not user.get("ticket"):
        return operator.idle_hint(ctx, staff)  # staff chat outside a room never becomes a complaint
    return consumer.handle(ctx, msg)

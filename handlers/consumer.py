"""The consumer: intake, progress lookup, talking in mediation, answering a proposal, rating."""

from __future__ import annotations

import json
from typing import Any

from flows import intake
from flows.mediation import Ticket, fire
from handlers import texts
from handlers.base import Context, Incoming
from handlers.common import RATING_PROMPT, clock_text, relay, ticket_line, ticket_session, vote

QUERY_WORDS = {"查询", "进度", "我的投诉", "查进度", "工单"}
HELP_WORDS = {"帮助", "help", "?", "？", "你好", "您好"}
AGREE_WORDS = {"同意", "同意方案", "接受"}
DECLINE_WORDS = {"不同意", "不接受", "拒绝"}
SKIP_WORDS = {"跳过", "不评价"}


def list_tickets(ctx: Context, openid: str) -> str:
    tickets = ctx.store.consumer_tickets(openid)
    if not tickets:
        return texts.NO_TICKETS
    lines = [ticket_line(t, ctx.directory.unit_name(t.unit)) for t in tickets]
    return "您的工单：\n" + "\n".join(lines)


def handle(ctx: Context, msg: Incoming) -> str | None:
    text = msg.text.strip()
    if msg.kind == "text" and text in QUERY_WORDS:
        return list_tickets(ctx, msg.openid)
    if msg.kind not in ("text", "image"):
        return texts.UNSUPPORTED

    lock = ctx.store.user_lock(msg.openid)
    if not lock.acquire():
        return texts.BUSY
    try:
        # Read after the lock: three quick answers must land in three slots, in order.
        user = ctx.store.load_user(msg.openid)
        if user.get("intake") and _intake_expired(ctx, user):
            ctx.store.save_user(msg.openid, {"intake": "", "intake_at": ""})
            notice = texts.INTAKE_EXPIRED.format(hours=_expire_hours(ctx))
            if msg.kind == "text" and len(text) >= 4 and text not in HELP_WORDS:
                return notice + "\n" + _start_intake(ctx, msg)
            return notice
        if user.get("intake"):
            try:
                data = json.loads(user["intake"])
            except ValueError:  # a damaged draft must not block the person forever
                data = {}
            return _continue_intake(ctx, msg, data)
        if user.get("ticket"):
            reply = _on_ticket(ctx, msg, user["ticket"])
            if reply is not None:
                return reply
        if msg.kind == "text" and text in HELP_WORDS:
            return texts.CONSUMER_HELP
        if msg.kind != "text":
            return texts.TEXT_FIRST
        return _start_intake(ctx, msg)
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - an expired lock must not turn a reply into a 500
            pass


def _expire_hours(ctx: Context) -> float:
    return float(ctx.config.get("intake", {}).get("expire_hours", 24))


def _intake_expired(ctx: Context, user: dict[str, str]) -> bool:
    """An intake untouched for longer than intake.expire_hours is abandoned."""
    started = float(user.get("intake_at") or 0)
    return ctx.now() - started > _expire_hours(ctx) * 3600


def _save_draft(ctx: Context, openid: str, draft: intake.IntakeDraft) -> None:
    ctx.store.save_user(openid, {"intake": json.dumps(draft.to_dict(), ensure_ascii=False),
                                 "intake_at": str(ctx.now())})


def _start_intake(ctx: Context, msg: Incoming) -> str:
    draft = intake.start(msg.text)
    _save_draft(ctx, msg.openid, draft)
    return "收到，我们来登记您的投诉。\n" + intake.prompt(draft)


def _continue_intake(ctx: Context, msg: Incoming, data: dict[str, Any]) -> str:
    draft = intake.IntakeDraft.from_dict(data)
    if msg.kind == "image":
        result = intake.answer_photo(draft, msg.media_id)
    else:
        result = intake.answer_text(draft, msg.text)
    if result.cancelled:
        ctx.store.save_user(msg.openid, {"intake": "", "intake_at": ""})
        return result.text
    if result.submitted:
        return _open_ticket(ctx, msg.openid, draft)
    _save_draft(ctx, msg.openid, draft)
    return result.text


def _open_ticket(ctx: Context, openid: str, draft: intake.IntakeDraft) -> str:
    """The consumer confirmed: route the first complaint text and open a 工单."""
    route = ctx.router.route(draft.facts)
    now = ctx.now()
    hours = float(ctx.config["tickets"]["response_hours"])
    ticket = Ticket(
        no=ctx.store.next_ticket_no(ctx.config["tickets"]["prefix"]),
        consumer=openid,
        unit=route.unit,
        category=route.category or "",
        keywords=list(route.hits),
        facts=draft.facts,
        merchant_name=draft.merchant,
        demand=draft.demand,
        phone=draft.phone,
        photos=list(draft.photos),
        created_at=now,
        response_due=now + hours * 3600,
    )
    unit_name = ctx.directory.unit_name(ticket.unit)
    pipe = ctx.store.pipeline()
    ctx.store.save_ticket(ticket, pipe)
    ctx.store.add_consumer_ticket(openid, ticket.no, pipe)
    ctx.store.save_user(openid, {"ticket": ticket.no, "intake": "", "intake_at": ""}, pipeline=pipe)
    ctx.store.append_transcript(ticket.no, "system", f"工单创建，分派至{unit_name}", pipeline=pipe,
                                event="created", keywords=list(route.hits))
    pipe.execute()

    label = route.label or "其他消费纠纷"
    hits = "、".join(route.hits) or "无"
    for member in ctx.directory.staff_of(ticket.unit):
        ctx.send(member.openid,
                 f"新工单 {ticket.no}（{label}，关键词：{hits}）\n商家：{ticket.merchant_name}\n"
                 f"诉求：{ticket.demand}\n经过：{ticket.facts[:200]}\n"
                 f"请在 {clock_text(ticket.response_due)} 前响应，回复 /take {ticket.no} 受理。",
                 kind="new_ticket", ticket=ticket.no)
    return (f"投诉已登记，工单号：{ticket.no}\n已转交【{unit_name}】处理，"
            f"工作人员将在{int(hours)}小时内（{clock_text(ticket.response_due)}前）响应。\n"
            "回复“查询”可随时查看进度。")


def _on_ticket(ctx: Context, msg: Incoming, no: str) -> str | None:
    """The consumer has an active ticket; what their message means depends on its state.
    None means the ticket is finished and the message starts something new."""
    text = msg.text.strip()
    with ticket_session(ctx, no) as (ticket, pipe):
        if ticket.consumer != msg.openid or ticket.state == "closed":
            ctx.store.save_user(msg.openid, {"ticket": ""}, pipeline=pipe)
            return None
        if msg.kind == "image":
            ticket.photos.append(msg.media_id)
            relay(ctx, ticket, "consumer", "[发送了一张图片，已存入工单证据]", pipe)
            return "图片已作为证据存入工单。"
        if ticket.state in ("settled", "terminated"):
            return _rate(ctx, ticket, text, pipe)
        if ticket.state == "proposal" and text in AGREE_WORDS | DECLINE_WORDS:
            return vote(ctx, ticket, "consumer", text in AGREE_WORDS, pipe)
        if ticket.state in ("mediating", "proposal"):
            relay(ctx, ticket, "consumer", text, pipe)
            return ""  # relayed like a group chat: no echo to the sender
        # submitted / accepted: nobody to talk to yet except the unit's staff.
        ctx.store.append_transcript(ticket.no, "consumer", text, pipeline=pipe)
        targets = [ticket.mediator] if ticket.mediator else [m.openid for m in ctx.directory.staff_of(ticket.unit)]
        for openid in targets:
            ctx.send(openid, f"【消费者补充 {ticket.no}】{text}", kind="relay", ticket=ticket.no)
        return f"已将您的补充说明转给工单 {ticket.no} 的处理人员。"


def _rate(ctx: Context, ticket: Ticket, text: str, pipe: Any) -> str:
    if text in SKIP_WORDS:
        rating = 0
    elif text in {"1", "2", "3", "4", "5"}:
        rating = int(text)
    else:
        return f"工单 {ticket.no} 已结束。{RATING_PROMPT}"
    fire(ticket, "rate", rating=rating, at=ctx.now())
    ctx.store.append_transcript(ticket.no, "consumer", f"评价：{rating or '未评价'}", pipeline=pipe, event="rated")
    ctx.store.save_user(ticket.consumer, {"ticket": ""}, pipeline=pipe)
    return f"感谢您的评价，工单 {ticket.no} 已办结。" if rating else f"工单 {ticket.no} 已办结。"

"""Merchants who settle first (先行和解): ODR enterprises and liaison stations, issue 5.

When the merchant a complaint names is registered (``python -m bot merchant add``) and its
contact has bound their WeChat, the new ticket goes to that contact first (state
``self_settling``) for ``clocks.merchant_first_window_hours``. The contact and the consumer talk
through the bot; the contact offers terms with “方案 <内容>”; the consumer answers 同意 (settled,
counted as 先行和解) or 不同意. A refusal, or the window's end (handlers/clocks.py), hands the ticket
to its handling unit, whose 24-hour clock starts then.
"""

from __future__ import annotations

import re
from typing import Any

from flows.mediation import Ticket, fire
from handlers.base import Context
from handlers.common import clock_text, relay, settle
from storage.merchants import MerchantStore

OFFER_RE = re.compile(r"^\s*(?:和解)?方案\s*[:：]?\s*(.+)$", re.S)
AGREE_WORDS = {"同意", "接受", "同意方案"}
DECLINE_WORDS = {"不同意", "不接受", "拒绝"}


def merchants(ctx: Context) -> MerchantStore:
    return MerchantStore(ctx.store.r, ctx.store.keys, clock=ctx.clock)


def window_seconds(ctx: Context) -> float:
    from handlers.clocks import hours

    return hours(ctx, "merchant_first_window_hours")


def bind_contact(ctx: Context, openid: str, code: str) -> str | None:
    """``绑定 <code>`` with a merchant contact's code; None when it is not one (staff codes next)."""
    record = merchants(ctx).bind(code, openid)
    if record is None:
        return None
    ctx.audit.record(None, f"merchant:{record.id}", "bind", f"{record.name} 联系人绑定微信", name=record.contact)
    return (f"绑定成功！您是【{record.name}】（{record.kind_name}）的联系人。消费者投诉贵单位时，"
            "工单会先发给您协商和解，请留意本公众号消息。")


def offer_first(ctx: Context, ticket: Ticket, pipe: Any) -> bool:
    """At creation: a complaint about a registered merchant with a bound contact goes to them first."""
    if ticket.kind not in ("complaint", "") or not ticket.merchant_name:
        return False
    found = merchants(ctx).match(ticket.merchant_name)
    if found is None or not found.openid or found.openid == ticket.consumer:
        return False
    due = ctx.now() + window_seconds(ctx)
    fire(ticket, "merchant_first", merchant_id=found.id, contact=found.openid, due=due)
    ctx.store.save_user(found.openid, {"merchant_of": ticket.no}, pipeline=pipe)
    ctx.store.append_transcript(ticket.no, "system", f"先交{found.name}（{found.kind_name}）先行和解，"
                                f"期限 {clock_text(due)}", pipeline=pipe, event="merchant_first", merchant=found.id)
    from handlers.merchant import brief_for_merchant

    ctx.send(found.openid,
             f"【先行和解】贵单位（{found.name}）收到一件消费者投诉，工单 {ticket.no}。\n{brief_for_merchant(ticket)}\n"
             f"请在 {clock_text(due)} 前与消费者协商：直接回复的文字会转给消费者；提出和解方案请回复“方案 <内容>”。"
             "期限内未和解，将转市场监管部门处理。", kind="invitation", ticket=ticket.no)
    return True


def confirmation_note(ctx: Context, tickets: list[Ticket]) -> str:
    """What the consumer is told about tickets that went to the merchant first."""
    lines = [f"\n工单 {t.no} 的商家是本局登记的消费维权联络站/ODR企业，已先转商家协商和解，"
             f"{clock_text(t.self_settle_due)} 前未和解将由监管部门处理。商家的回复会转给您。"
             for t in tickets if t.state == "self_settling"]
    return "".join(lines)


def consumer_says(ctx: Context, ticket: Ticket, text: str, pipe: Any) -> str:
    if text in AGREE_WORDS and ticket.proposal:
        fire(ticket, "accept_offer", at=ctx.now())
        ctx.store.append_transcript(ticket.no, "consumer", "同意商家和解方案", pipeline=pipe, event="agree")
        settle(ctx, ticket, pipe)
        return f"您已接受商家的和解方案，先行和解成功。\n【协议】{ticket.proposal}"
    if text in DECLINE_WORDS:
        ctx.store.append_transcript(ticket.no, "consumer", "不接受商家和解方案", pipeline=pipe, event="decline")
        hand_over(ctx, ticket, pipe, "消费者不接受商家的和解方案")
        return f"已记录。工单 {ticket.no} 转交【{ctx.directory.unit_name(ticket.unit)}】处理，24小时内会有工作人员联系您。"
    relay(ctx, ticket, "consumer", text, pipe)
    return ""


def merchant_says(ctx: Context, ticket: Ticket, text: str, pipe: Any) -> str:
    match = OFFER_RE.match(text)
    if not match:
        relay(ctx, ticket, "merchant", text, pipe)
        return ""
    terms = match.group(1).strip()
    fire(ticket, "offer", terms=terms)
    ctx.store.append_transcript(ticket.no, "merchant", f"和解方案：{terms}", pipeline=pipe, event="offer")
    ctx.send(ticket.consumer, f"商家提出和解方案（工单 {ticket.no}）：\n{terms}\n接受请回复“同意”，不接受请回复“不同意”"
                              "（将转市场监管部门调解）。", kind="proposal", ticket=ticket.no)
    return "和解方案已发给消费者，等待答复。"


def hand_over(ctx: Context, ticket: Ticket, pipe: Any, reason: str) -> None:
    """No settlement: the handling unit takes over and its 24-hour clock starts now."""
    contact = ticket.merchant
    response_due = ctx.now() + float(ctx.config["tickets"]["response_hours"]) * 3600
    fire(ticket, "hand_over", reason=reason, response_due=response_due)
    if contact and ctx.store.load_user(contact).get("merchant_of") == ticket.no:
        ctx.store.save_user(contact, {"merchant_of": ""}, pipeline=pipe)
    ctx.store.append_transcript(ticket.no, "system", f"转承办单位：{reason}", pipeline=pipe, event="handed_over")
    unit = ctx.directory.unit_name(ticket.unit)
    ctx.send(contact, f"工单 {ticket.no} 未能先行和解（{reason}），已转{unit}处理，届时将邀请贵单位参加调解。",
             ticket=ticket.no)
    ctx.send(ticket.consumer, f"工单 {ticket.no} 未能与商家先行和解，已转【{unit}】处理，"
                              f"{clock_text(response_due)} 前会有工作人员联系您。", ticket=ticket.no)
    for member in ctx.directory.staff_of(ticket.unit):
        ctx.send(member.openid, f"新工单 {ticket.no}（商家先行和解未成：{reason}）\n商家：{ticket.merchant_name}\n"
                                f"诉求：{ticket.demand}\n经过：{ticket.facts[:200]}\n请在 {clock_text(response_due)} 前"
                                f" /take {ticket.no} 受理。", kind="new_ticket", ticket=ticket.no)

"""The merchant: joining by invitation code or QR scene, talking, answering the proposal.

What the merchant learns of the consumer is only what mediation needs (DOMAIN.md §2): the
facts and the demand with any phone or ID number in them masked, and the consumer's
phone as 138****0000. Never an openid, never who else reported the business (a 举报人's
identity stays with the bureau). ``brief_for_merchant`` is the one place that text is made.
"""

from __future__ import annotations

import re

from flows.mediation import Ticket, fire
from handlers import texts
from handlers.base import Context, Incoming
from handlers.common import mask_phone, relay, vote
from handlers.consumer import AGREE_WORDS, DECLINE_WORDS
from handlers.trail import audited_session

INVITE_RE = re.compile(r"^\s*(?:邀请码[:：\s]*)?(\d{6})\s*$")
SCENE_PREFIX = "join:"


def invite_code_in(text: str) -> str | None:
    match = INVITE_RE.match(text or "")
    return match.group(1) if match else None


def scene_for(code: str) -> str:
    """The QR scene string for an invitation (QR_STR_SCENE allows 1–64 characters)."""
    return SCENE_PREFIX + code


def code_from_scene(scene: str) -> str | None:
    return scene[len(SCENE_PREFIX):] if scene and scene.startswith(SCENE_PREFIX) else None


# Numbers that identify a person. An ID number must look like one (area, birth date, check
# digit), so an 18-digit order number, which the merchant needs to find the sale, stays readable.
ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                          r"(\d{3}[0-9Xx])(?![0-9A-Za-z])")
MOBILE_RE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
LANDLINE_RE = re.compile(r"(?<!\d)(0\d{2,3}-)\d{3,4}(\d{4})(?!\d)")


def redact(text: str) -> str:
    """Mask ID numbers (370303********1234), mobile (138****0000) and landline numbers."""
    text = ID_NUMBER_RE.sub(lambda m: m.group(1) + "********" + m.group(2)[-4:], text or "")
    text = MOBILE_RE.sub(lambda m: m.group(1) + "****" + m.group(2), text)
    return LANDLINE_RE.sub(lambda m: m.group(1) + "****" + m.group(2), text)


def brief_for_merchant(ticket: Ticket) -> str:
    """The complaint as the merchant sees it when joining."""
    return (f"【消费者反映】{redact(ticket.facts[:300])}\n【消费者诉求】{redact(ticket.demand)}\n"
            f"【联系电话】{mask_phone(ticket.phone)}")


def join(ctx: Context, openid: str, code: str) -> str:
    """Whoever presents a live invitation code joins that ticket as its merchant."""
    no = ctx.store.resolve_invite(code)
    if not no:
        return texts.INVITE_UNKNOWN
    with audited_session(ctx, no, "merchant", "商家") as (ticket, pipe):
        if openid == ticket.consumer:
            return "您是这件投诉的投诉人，不能以商家身份加入。"
        if ticket.merchant == openid:
            return f"您已在工单 {ticket.no} 的调解中，直接发消息即可。"
        fire(ticket, "join")
        ticket.merchant = openid
        ctx.store.drop_invite(code, pipeline=pipe)
        ctx.store.save_user(openid, {"merchant_of": ticket.no}, pipeline=pipe)
        ctx.store.append_transcript(ticket.no, "system", "商家加入调解", pipeline=pipe, event="merchant_joined")
        ctx.audit.record(ticket.no, "merchant", "join", "商家凭邀请码加入调解", pipeline=pipe, name="商家")
        ctx.send(ticket.consumer, f"商家已加入工单 {ticket.no} 的调解，您可以直接发消息沟通。", ticket=ticket.no)
        ctx.send(ticket.mediator, f"商家已加入工单 {ticket.no} 的调解。", ticket=ticket.no)
        return (f"您已加入工单 {ticket.no} 的调解（市场监管局不见面调解）。\n{brief_for_merchant(ticket)}\n"
                "请直接回复消息，您的每条消息都会转给消费者和调解员。")


def handle(ctx: Context, msg: Incoming, no: str) -> str | None:
    """A message from someone who joined a ticket as merchant. None: no longer in one."""
    text = msg.text.strip()
    with audited_session(ctx, no, "merchant", "商家") as (ticket, pipe):
        if ticket.merchant != msg.openid or not ticket.is_open:
            ctx.store.save_user(msg.openid, {"merchant_of": ""}, pipeline=pipe)
            return None
        if msg.kind == "image":
            relay(ctx, ticket, "merchant", "[发送了一张图片]", pipe)
            return "图片已记录。"
        if msg.kind != "text":
            return texts.UNSUPPORTED
        if ticket.state == "self_settling":  # issue 5: settling first, before the bureau steps in
            from handlers import merchant_first

            return merchant_first.merchant_says(ctx, ticket, text, pipe)
        if ticket.state == "proposal" and text in AGREE_WORDS | DECLINE_WORDS:
            return vote(ctx, ticket, "merchant", text in AGREE_WORDS, pipe)
        if ticket.state in ("mediating", "proposal"):
            relay(ctx, ticket, "merchant", text, pipe)
            return ""
        return "调解尚未开始，请等待调解员通知。"

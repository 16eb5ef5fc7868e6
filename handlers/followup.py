"""Follow-up (回访): the consumer's answer to the one rating question after a case ends.

A rating of 1–2, or an answer containing 不满意, is not the end: the case is reopened and goes
to the mobile team (机动维权小分队) with the consumer's own words, in the same write as the
rating. ``flows.roles.unsatisfied`` keeps such tickets in the mobile team's view afterwards.
"""

from __future__ import annotations

import re
from typing import Any

from flows.mediation import Ticket, fire
from flows.roles import UNSATISFIED_AT_MOST
from handlers.base import Context

UNHAPPY_WORDS = ("不满意",)
LEADING_RATING = re.compile(r"^\s*([1-5])(?!\d)")


def is_unhappy(text: str, rating: int) -> bool:
    return 0 < rating <= UNSATISFIED_AT_MOST or any(word in text for word in UNHAPPY_WORDS)


def rating_in(text: str) -> int:
    """A rating given with words ("2 商家还没退款") counts as that rating."""
    match = LEADING_RATING.match(text)
    return int(match.group(1)) if match else 0


def reopen_unsatisfied(ctx: Context, ticket: Ticket, text: str, rating: int, pipe: Any) -> str:
    """Record the rating, reopen the case for the mobile team and tell them what was said."""
    now = ctx.now()
    fire(ticket, "rate", rating=rating, at=now)
    ctx.store.append_transcript(ticket.no, "consumer", f"回访：{text}", pipeline=pipe, event="rated", rating=rating)
    fire(ticket, "reopen", at=now)
    ticket.followed_up = text
    reason = f"回访不满意（{rating} 分）：{text}" if rating else f"回访不满意：{text}"
    fire(ticket, "escalate", level="mobile", reason=reason[:200], at=now)
    ctx.store.append_transcript(ticket.no, "system", f"回访不满意，工单重新开启并转机动维权小分队：{text}",
                                pipeline=pipe, event="reopened")
    ctx.audit.record(ticket.no, "consumer", "followup", reason[:200], pipeline=pipe, name="消费者")
    team = [m.openid for m in ctx.directory.with_roles("mobile") if m.openid]
    if ticket.mediator:
        team.append(ticket.mediator)
    for openid in dict.fromkeys(team):
        ctx.send(openid, f"【回访不满意】工单 {ticket.no}（{ctx.directory.unit_name(ticket.unit)}）已重新开启。\n"
                         f"消费者说：{text}\n商家：{ticket.merchant_name}｜诉求：{ticket.demand or '无'}\n"
                         f"回复 /join {ticket.no} 接手调解，/show {ticket.no} 查看经过。",
                 kind="notice", ticket=ticket.no)
    return (f"收到您的反馈。工单 {ticket.no} 已重新开启，交由机动维权小分队跟进，工作人员会尽快联系您。"
            "您可以直接在这里补充情况。")

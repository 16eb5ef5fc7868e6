"""A ticket's clocks: when each deadline is due, and what happens when it fires.

Each clock is declared once with ``@clock(kind, label, due=...)``: ``due(ctx, ticket)`` says when
it falls for the ticket as it is now (None: not running in this state), the decorated function
is what happens at that moment. Nothing else schedules or cancels:

- ``sync(ctx, ticket, pipe)`` runs in every ticket write (``handlers.common.ticket_session`` and
  ticket creation). It compares the deadlines the ticket should have with those it has
  (``ticket.deadlines``) and schedules, moves or cancels RQ jobs (``bot.clocks.Clocks``) in the
  same MULTI/EXEC as the ticket. A take, a transfer, a reopening or an answer therefore moves
  or stops its clocks without any handler having to remember them, and a deadline never
  exists without the state that needs it.
- ``run_clock`` is what the job runs (``bot.clocks.fire``, in the worker). Under the ticket's
  lock it checks the deadline is still the one the ticket expects and has not fired, then
  records ``kind@due`` in ``ticket.fired`` in the same write as the clock's effects, its audit
  entry and the messages it queues. So a deadline fires at most once, however often RQ runs the
  job (a worker killed mid-job, a replay), and a stale job (the ticket moved on) does nothing.

Times: the 24-hour response and the other service clocks count hours (``clocks:`` config);
the statutory ones count Chinese working days or calendar days (flows/workdays.py, DOMAIN §1.4).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

from bot import defaults
from flows.mediation import TERMINATION_REASONS, Ticket, fire
from flows.workdays import Calendar
from handlers.base import Context
from handlers.common import RATING_PROMPT, clock_text
from handlers.trail import audited_session

log = logging.getLogger(__name__)

ACTOR, ACTOR_NAME = "clock", "时钟"


@dataclass(frozen=True)
class Clock:
    kind: str
    label: str
    due: Callable[[Context, Ticket], float | None]
    func: Callable[[Context, Ticket, Any], str]


CLOCKS: dict[str, Clock] = {}


def clock(kind: str, *, label: str, due: Callable[[Context, Ticket], float | None]):
    """Register a clock. ``kind`` goes into the RQ job id (letters, digits, '_')."""

    def register(func: Callable[[Context, Ticket, Any], str]) -> Callable[[Context, Ticket, Any], str]:
        CLOCKS[kind] = Clock(kind, label, due, func)
        return func

    return register


# --- scheduling -----------------------------------------------------------------------------------

def due_dates(ctx: Context, ticket: Ticket) -> dict[str, float]:
    """kind → due for the clocks this ticket should have now (fired ones are not repeated)."""
    out = {}
    for spec in CLOCKS.values():
        due = spec.due(ctx, ticket)
        if due and mark(spec.kind, _whole(due)) not in ticket.fired:
            out[spec.kind] = _whole(due)
    return out


def sync(ctx: Context, ticket: Ticket, pipe: Any) -> None:
    """Schedule, move or cancel the ticket's clock jobs in ``pipe`` (the ticket's own write)."""
    wanted = due_dates(ctx, ticket)
    current = {kind: float(due) for kind, due in ticket.deadlines}
    if wanted == current:
        return
    for kind, due in wanted.items():
        if current.get(kind) != due:
            ctx.clocks.schedule(ticket.no, kind, due, pipeline=pipe)
    gone = [kind for kind in current if kind not in wanted]
    if gone:
        ctx.clocks.cancel(ticket.no, gone, pipeline=pipe)
    ticket.deadlines = [[kind, due] for kind, due in sorted(wanted.items())]


def mark(kind: str, due: float) -> str:
    return f"{kind}@{int(due)}"


def _whole(ts: float) -> float:
    # Whole seconds: the due travels through RQ's JSON and the scheduler's integer scores.
    return float(math.ceil(ts))


# --- running a due clock (the worker) --------------------------------------------------------------

def run_clock(services: Any, no: str, kind: str, due: float) -> str:
    """The RQ job body: fire ``kind`` for ticket ``no`` if it is still due and never fired."""
    spec = CLOCKS.get(kind)
    if spec is None:
        return f"unknown clock {kind}"
    ctx = Context(store=services.store, router=services.router, directory=services.directory,
                  config=services.config, clock=services.clock, staff=services.staff, audit=services.audit,
                  clocks=services.clocks)
    due = _whole(due)
    result = ""
    with audited_session(ctx, no, ACTOR, ACTOR_NAME) as (ticket, pipe):
        if mark(kind, due) in ticket.fired:
            result = "already fired"
        elif due_dates(ctx, ticket).get(kind) != due:
            result = "stale: the ticket moved on"  # taken, answered, moved: nothing to do
        elif ctx.now() < due:
            # Released before its time (a clock that runs ahead): put it back, or it would be lost.
            ctx.clocks.schedule(ticket.no, kind, due, pipeline=pipe)
            result = "not due yet"
        else:
            ticket.fired.append(mark(kind, due))
            result = spec.func(ctx, ticket, pipe) or "fired"
            ctx.audit.record(ticket.no, ACTOR, f"clock:{kind}", f"{spec.label}：{result}", pipeline=pipe,
                             name=ACTOR_NAME)
            # The messages go into the same MULTI/EXEC as the mark: fired means told.
            services.outbound.enqueue_all(ctx.outbox, pipeline=pipe)
    return result


# --- helpers --------------------------------------------------------------------------------------

def hours(ctx: Context, name: str) -> float:
    value = (ctx.config.get("clocks") or {}).get(name)
    return float(value if value is not None else getattr(defaults, name.upper())) * 3600


def calendar(ctx: Context) -> Calendar:
    raw = ctx.config.get("calendar") or {}
    return Calendar(raw.get("holidays") or (), raw.get("workdays") or ())


def _setting(ctx: Context, name: str) -> int:
    value = (ctx.config.get("clocks") or {}).get(name)
    return int(value if value is not None else getattr(defaults, name.upper()))


def waiting_for_response(ticket: Ticket) -> bool:
    return ticket.state == "submitted" and not ticket.responded_at and ticket.response_due > 0


def unit_staff(ctx: Context, ticket: Ticket) -> list[str]:
    if ticket.mediator:
        return [ticket.mediator]
    return [m.openid for m in ctx.directory.staff_of(ticket.unit) if m.openid]


def leaders(ctx: Context, ticket: Ticket) -> list[str]:
    """The unit's leader when one is registered for it, else every leader."""
    everyone = [m for m in ctx.directory.with_roles("leader") if m.openid]
    mine = [m.openid for m in everyone if m.unit == ticket.unit]
    return mine or [m.openid for m in everyone]


def mobile_team(ctx: Context) -> list[str]:
    return [m.openid for m in ctx.directory.with_roles("mobile") if m.openid]


def tell(ctx: Context, openids: list[str], text: str, ticket: Ticket, kind: str = "notice") -> int:
    people = list(dict.fromkeys(o for o in openids if o))
    for openid in people:
        ctx.send(openid, text, kind=kind, ticket=ticket.no)
    return len(people)


def escalate(ctx: Context, ticket: Ticket, pipe: Any, reason: str, notify: list[str]) -> int:
    """Mark the ticket escalated to the mobile team and tell ``notify`` (once each)."""
    if not ticket.escalated:
        fire(ticket, "escalate", level="mobile", reason=reason, at=ctx.now())
    ctx.store.append_transcript(ticket.no, "system", f"自动上报机动维权小分队：{reason}", pipeline=pipe,
                                event="escalated")
    text = (f"【自动上报·机动维权小分队】工单 {ticket.no}（{ctx.directory.unit_name(ticket.unit)}）\n原因：{reason}\n"
            f"商家：{ticket.merchant_name}｜诉求：{ticket.demand or '无'}\n回复 /show {ticket.no} 查看，/take {ticket.no} 受理。")
    return tell(ctx, notify, text, ticket, kind="deadline")


def _overdue(ticket: Ticket, what: str) -> None:
    if what not in ticket.overdue:
        ticket.overdue.append(what)


# --- the 24-hour response (Linzi mechanism) -------------------------------------------------------

def _remind_due(ctx: Context, t: Ticket) -> float | None:
    if not waiting_for_response(t):
        return None
    # Counted from when the unit got it (response_due - response_hours): a hand-over restarts it.
    window = float(ctx.config["tickets"]["response_hours"]) * 3600
    return t.response_due - window + hours(ctx, "remind_hours")


@clock("remind", label="24小时响应提醒", due=_remind_due)
def remind_unit(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    n = tell(ctx, unit_staff(ctx, ticket),
             f"【提醒】工单 {ticket.no} 尚未响应消费者，请在 {clock_text(ticket.response_due)} 前受理"
             f"（/take {ticket.no}）或答复（/reply {ticket.no} <内容>），逾期将自动上报机动维权小分队和分管领导。",
             ticket, kind="deadline")
    return f"提醒承办人员 {n} 人"


@clock("response", label="24小时未响应", due=lambda ctx, t: t.response_due if waiting_for_response(t) else None)
def response_missed(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    _overdue(ticket, "response")
    n = escalate(ctx, ticket, pipe, f"{int(float(ctx.config['tickets']['response_hours']))}小时内未响应消费者",
                 mobile_team(ctx) + leaders(ctx, ticket))
    return f"已上报，通知 {n} 人"


# --- statutory clocks (DOMAIN §1.4) ---------------------------------------------------------------

def _acceptance_due(ctx: Context, t: Ticket) -> float | None:
    if t.state != "submitted" or not t.created_at or t.kind == "consult":
        return None
    return calendar(ctx).add_workdays(t.created_at, _setting(ctx, "acceptance_workdays"))


@clock("acceptance", label="受理期限（7个工作日）", due=_acceptance_due)
def acceptance_missed(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    _overdue(ticket, "acceptance")
    n = tell(ctx, unit_staff(ctx, ticket) + leaders(ctx, ticket),
             f"【法定时限】工单 {ticket.no} 自收到之日起已满 {_setting(ctx, 'acceptance_workdays')} 个工作日仍未决定是否受理"
             f"（《市场监督管理投诉举报处理办法》规定7个工作日内决定），请立即处理。", ticket, kind="deadline")
    ctx.store.append_transcript(ticket.no, "system", "受理期限已届满", pipeline=pipe, event="overdue")
    return f"通知 {n} 人"


def _mediation_due(ctx: Context, t: Ticket) -> float | None:
    if t.state not in ("accepted", "mediating", "proposal") or not t.mediable:
        return None
    start = max(t.accepted_at, t.reopened_at)  # a reopened case gets its own period
    return calendar(ctx).add_days(start, _setting(ctx, "mediation_days")) if start else None


@clock("mediation", label="调解期限（60日）", due=_mediation_due)
def mediation_expired(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    reason = TERMINATION_REASONS["5"]
    fire(ticket, "terminate", reason=reason, at=ctx.now())
    _overdue(ticket, "mediation")
    ctx.store.append_transcript(ticket.no, "system", f"终止调解：{reason}", pipeline=pipe, event="terminated")
    text = f"工单 {ticket.no} 终止调解。原因：{reason}（办法第二十三条第一款第五项）。"
    ctx.send(ticket.merchant, text, kind="result", ticket=ticket.no)
    ctx.send(ticket.mediator, text, kind="result", ticket=ticket.no)
    ctx.send(ticket.consumer, f"{text}\n您可依法通过仲裁或诉讼解决。\n\n{RATING_PROMPT}", kind="result", ticket=ticket.no)
    return "终止调解（原因五）"


def _report_due(ctx: Context, t: Ticket) -> float | None:
    if t.kind != "report" or not t.is_open or not t.created_at:
        return None
    return calendar(ctx).add_workdays(t.created_at, _setting(ctx, "report_check_workdays"))


@clock("report_check", label="举报核查期限（15个工作日）", due=_report_due)
def report_check_missed(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    _overdue(ticket, "report_check")
    n = tell(ctx, unit_staff(ctx, ticket) + leaders(ctx, ticket),
             f"【法定时限】举报工单 {ticket.no} 已满 {_setting(ctx, 'report_check_workdays')} 个工作日，"
             "应完成核查并决定是否立案（可经批准延长15个工作日）。", ticket, kind="deadline")
    return f"通知 {n} 人"


# --- the merchant joining, the proposal, the rating -----------------------------------------------

def _waiting_for_merchant(t: Ticket) -> bool:
    return t.state == "accepted" and bool(t.invite_code) and not t.merchant and t.invited_at > 0


@clock("join_remind", label="商家加入提醒",
       due=lambda ctx, t: t.invited_at + hours(ctx, "merchant_join_remind_hours") if _waiting_for_merchant(t) else None)
def merchant_join_remind(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    n = tell(ctx, unit_staff(ctx, ticket),
             f"【提醒】工单 {ticket.no} 的商家（{ticket.merchant_name}）尚未加入调解，请电话联系商家，"
             f"邀请码 {ticket.invite_code}。", ticket, kind="deadline")
    return f"提醒调解员 {n} 人"


@clock("join_escalate", label="商家未加入",
       due=lambda ctx, t: t.invited_at + hours(ctx, "merchant_join_escalate_hours") if _waiting_for_merchant(t) else None)
def merchant_join_escalate(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    n = escalate(ctx, ticket, pipe, "商家受邀后长时间未加入调解", mobile_team(ctx) + unit_staff(ctx, ticket))
    return f"已上报，通知 {n} 人"


def _proposal_open(t: Ticket) -> bool:
    return t.state == "proposal" and t.proposed_at > 0


@clock("proposal_remind", label="方案答复提醒",
       due=lambda ctx, t: t.proposed_at + hours(ctx, "proposal_remind_hours") if _proposal_open(t) else None)
def proposal_remind(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    waiting = [ticket.consumer if r == "consumer" else ticket.merchant
               for r in ("consumer", "merchant") if r not in ticket.agreed]
    n = tell(ctx, waiting, f"提醒：工单 {ticket.no} 的调解方案还在等您答复：\n{ticket.proposal}\n"
                           "同意请回复“同意”，不同意请回复“不同意”。", ticket, kind="proposal")
    return f"提醒 {n} 人"


@clock("proposal_expire", label="方案答复超时",
       due=lambda ctx, t: t.proposed_at + hours(ctx, "proposal_expire_hours") if _proposal_open(t) else None)
def proposal_expired(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    fire(ticket, "expire_proposal")
    ctx.store.append_transcript(ticket.no, "system", "调解方案超时未获双方答复，视为未答复", pipeline=pipe,
                                event="proposal_expired")
    tell(ctx, [ticket.consumer, ticket.merchant, ticket.mediator],
         f"工单 {ticket.no} 的调解方案超时未获双方答复，视为未答复，调解继续。", ticket, kind="proposal")
    return "方案视为未答复"


def _rating_due(ctx: Context, t: Ticket) -> float | None:
    ended = t.settled_at if t.state == "settled" else t.ended_at if t.state == "terminated" else 0
    return ended + hours(ctx, "rating_timeout_hours") if ended else None


@clock("rating", label="评价超时", due=_rating_due)
def rating_timeout(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    fire(ticket, "rate", rating=0, at=ctx.now())
    ctx.store.append_transcript(ticket.no, "system", "评价超时，未评价办结", pipeline=pipe, event="rated")
    ctx.send(ticket.consumer, f"工单 {ticket.no} 已办结（未评价）。如仍有问题，可随时再次投诉。", ticket=ticket.no)
    return "未评价办结"


# --- merchant-first settlement (handlers/merchant_first.py) ---------------------------------------

@clock("merchant_first", label="商家先行和解期限",
       due=lambda ctx, t: t.self_settle_due if t.state == "self_settling" and t.self_settle_due else None)
def merchant_first_expired(ctx: Context, ticket: Ticket, pipe: Any) -> str:
    from handlers.merchant_first import hand_over

    hand_over(ctx, ticket, pipe, "商家先行和解期限届满，未达成和解")
    return "转承办单位处理"

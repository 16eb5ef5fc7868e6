"""Mediation: one ticket (工单) from submission to a signed settlement or a recorded termination.

    submitted ──accept──► accepted ──join──► mediating ──propose──► proposal
        │                    │                  ▲   │                 │  │
        │                    │                  └───┼──── decline ────┘  │ agree (both said 同意)
        └────────────────────┴──── terminate ───────┴──► terminated      ▼
                                                                      settled
                              settled | terminated ──rate──► closed

Staff can also send a ticket back to intake (退单) or transfer it to another unit before the
merchant joins (both: back to ``submitted``), record an agreement reached outside the bot
(``settle``), escalate it to the mobile team or a 会商 (no state change) and reopen a finished
one (back to ``accepted``; the merchant is invited again).

Three parties act on it: the consumer, the merchant (joined by invitation code or QR scene)
and a mediator (staff of the handling unit who took the ticket). Handlers fire triggers;
they never assign ``state``. Pure: no Flask, no Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from transitions import Machine, MachineError

STATES = ["submitted", "accepted", "mediating", "proposal", "settled", "terminated", "closed", "self_settling"]
OPEN_STATES = ["submitted", "accepted", "mediating", "proposal", "self_settling"]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "accept", "source": "submitted", "dest": "accepted"},
    {"trigger": "invite", "source": ["accepted", "mediating"], "dest": None},  # internal: a code is issued
    {"trigger": "join", "source": "accepted", "dest": "mediating"},
    {"trigger": "propose", "source": "mediating", "dest": "proposal", "before": "set_proposal"},
    {"trigger": "agree", "source": "proposal", "dest": "settled", "conditions": "all_agreed"},
    {"trigger": "agree", "source": "proposal", "dest": None},  # one side agreed; wait for the other
    {"trigger": "decline", "source": "proposal", "dest": "mediating", "before": "clear_proposal"},
    {"trigger": "terminate", "source": OPEN_STATES, "dest": "terminated", "before": "set_termination"},
    {"trigger": "rate", "source": ["settled", "terminated"], "dest": "closed", "before": "set_rating"},
    # issue 4: staff re-routing, offline settlement, escalation, reopening
    {"trigger": "send_back", "source": ["submitted", "accepted"], "dest": "submitted", "before": "set_unit"},
    {"trigger": "transfer", "source": ["submitted", "accepted"], "dest": "submitted", "before": "set_unit"},
    {"trigger": "settle", "source": ["accepted", "mediating", "proposal"], "dest": "settled",
     "before": "set_proposal"},
    {"trigger": "escalate", "source": OPEN_STATES + ["settled", "terminated"], "dest": None,
     "before": "set_escalation"},
    {"trigger": "reopen", "source": ["settled", "terminated", "closed"], "dest": "accepted", "before": "set_reopened"},
    # issue 5: merchant-first settlement (ODR enterprise / liaison station), clocks
    {"trigger": "merchant_first", "source": "submitted", "dest": "self_settling", "before": "set_merchant_first"},
    {"trigger": "offer", "source": "self_settling", "dest": None, "before": "set_proposal"},
    {"trigger": "accept_offer", "source": "self_settling", "dest": "settled", "conditions": "has_proposal",
     "before": "set_self_settled"},
    {"trigger": "hand_over", "source": "self_settling", "dest": "submitted", "before": "set_handed_over"},
    {"trigger": "expire_proposal", "source": "proposal", "dest": "mediating", "before": "clear_proposal"},
]

MACHINE = Machine(
    model=None, states=STATES, transitions=TRANSITIONS, initial=None, auto_transitions=False
)

# What to tell a person who tries a step the ticket's state does not allow.
NOT_NOW = {
    "accept": "该工单已被受理或已结束，无需再次受理。",
    "invite": "只有已受理、尚在调解中的工单才能邀请商家。",
    "join": "该调解已有商家加入或已经结束。",
    "propose": "商家加入调解后才能提出调解方案；已有方案待答复时请等待双方答复。",
    "agree": "目前没有待确认的调解方案。",
    "decline": "目前没有待确认的调解方案。",
    "terminate": "该工单已经结束，不能再终止。",
    "rate": "调解结束后才能评价。",
    "send_back": "商家加入调解后不能再退单；请继续调解或终止调解。",
    "transfer": "商家加入调解后不能再转办；请继续调解或终止调解。",
    "settle": "只有已受理、尚未结束的工单才能记录调解成功。",
    "escalate": "该工单已办结，请先用 /reopen 重新开启。",
    "reopen": "只有已结束的工单才能重新开启。",
    "merchant_first": "只有刚提交的工单才能先交商家和解。",
    "offer": "该工单不在商家先行和解阶段。",
    "accept_offer": "商家还没有提出和解方案。",
    "hand_over": "该工单不在商家先行和解阶段。",
    "expire_proposal": "目前没有待确认的调解方案。",
}

# 终止调解 reasons, 办法 第二十三条 (DOMAIN.md §1.6); issue 4 makes staff pick one by code.
TERMINATION_REASONS = {
    "1": "投诉人撤回投诉或者双方自行和解",
    "2": "一方当事人拒绝调解或者无正当理由不参加调解",
    "3": "一方当事人表示无法达成调解协议",
    "4": "双方就检测、鉴定费用无法达成一致",
    "5": "自受理之日起六十日内未达成调解协议",
    "6": "受理后发现存在不予受理情形",
    "7": "当事人死亡或者终止",
    "8": "其他应当终止的情形",
}

# Where /escalate sends a ticket (issue 4): the mobile team, or a 会商 of leaders and units.
ESCALATION_LEVELS = {"mobile": "机动维权小分队", "consult": "会商"}

# Issue 6: steps that bring in the merchant or settle with them; a 举报/咨询 ticket refuses them.
MEDIATION_ONLY = {"invite", "join", "propose", "agree", "decline", "settle", "merchant_first", "offer", "accept_offer"}
NOT_MEDIABLE = "举报和咨询工单不进行调解，不能邀请商家或提出调解方案；处理完毕请用 /close 写明结果办结。"

ROLE_LABELS = {"consumer": "消费者", "merchant": "商家", "mediator": "调解员", "system": "系统"}


@dataclass(eq=False)  # identity equality: see STYLE.md, shared-machine pitfalls
class Ticket:
    no: str
    state: str = "submitted"
    consumer: str = ""  # openid
    merchant: str = ""  # openid of the merchant's representative, once joined
    mediator: str = ""  # openid of the staff member who took it
    unit: str = ""
    category: str = ""
    keywords: list[str] = field(default_factory=list)
    facts: str = ""
    merchant_name: str = ""
    demand: str = ""
    phone: str = ""
    photos: list[str] = field(default_factory=list)
    created_at: float = 0.0
    response_due: float = 0.0
    accepted_at: float = 0.0
    invite_code: str = ""
    proposal: str = ""
    agreed: list[str] = field(default_factory=list)  # roles that said 同意 to the current proposal
    settled_at: float = 0.0
    terminated_reason: str = ""
    ended_at: float = 0.0
    rating: int = 0
    closed_at: float = 0.0
    # issue 4
    mediator_id: str = ""  # staff id of the mediator (the dashboard's staff may have no openid)
    transferred_from: str = ""  # the unit before the last transfer or 退单
    returned_reason: str = ""  # why that unit sent it back to intake (退单)
    escalated: str = ""  # "" | "mobile" (机动维权小分队) | "consult" (会商)
    escalation_reason: str = ""
    escalated_at: float = 0.0
    reopened: int = 0  # how many times a finished ticket was reopened
    reopened_at: float = 0.0
    # issue 6: triage of the first message (flows/triage.py, handlers/consumer.py)
    kind: str = "complaint"  # complaint (投诉: mediated) | report (举报: checked, never mediated) | consult (咨询)
    candidates: list[list[Any]] = field(default_factory=list)  # top-2 [[category, score], ...] at creation
    routed: str = ""  # category | station (by the merchant's town) | intake (not confident: the intake queue)
    station: str = ""  # 市场监管所 of the merchant's town, when known
    place: str = ""  # where the merchant is, as the consumer said it (town / location label)
    related: list[str] = field(default_factory=list)  # the other half of a 投诉+举报 message
    repeats: int = 0  # how often the same consumer filed the same matter again (joined, not duplicated)
    # issue 5: clocks (handlers/clocks.py), merchant-first settlement, follow-up
    responded_at: float = 0.0  # first response of the unit to the consumer (take, /reply): stops the 24 h clock
    deadlines: list[list[Any]] = field(default_factory=list)  # [[kind, due], ...] scheduled as RQ jobs now
    fired: list[str] = field(default_factory=list)  # "kind@due" of every deadline that fired (at most once each)
    overdue: list[str] = field(default_factory=list)  # statutory/SLA limits passed: response, acceptance, ...
    invited_at: float = 0.0  # last /invite (merchant join clock)
    proposed_at: float = 0.0  # last /propose (proposal answer clock)
    merchant_id: str = ""  # registered merchant (ODR enterprise / liaison station) matched at intake
    self_settle_due: float = 0.0  # end of the merchant-first window (0: no window)
    self_settled: int = 0  # 1: settled by the merchant before the bureau stepped in (先行和解)
    handed_over: str = ""  # why the merchant-first window ended without a settlement
    followed_up: str = ""  # the consumer's words when a follow-up (回访) reopened the case

    # --- conditions and callbacks named in TRANSITIONS ---------------------------------------
    def all_agreed(self, **_: Any) -> bool:
        return {"consumer", "merchant"} <= set(self.agreed)

    def set_proposal(self, terms: str = "", **_: Any) -> None:
        self.proposal = terms
        self.agreed = []

    def clear_proposal(self, **_: Any) -> None:
        self.agreed = []

    def set_termination(self, reason: str = "", at: float = 0.0, **_: Any) -> None:
        self.terminated_reason = reason
        self.ended_at = at

    def set_rating(self, rating: int = 0, at: float = 0.0, **_: Any) -> None:
        self.rating = rating
        self.closed_at = at

    def set_unit(self, unit: str = "", reason: str = "", **_: Any) -> None:
        """退单 or transfer: a new unit must take it again, so nobody mediates it now."""
        self.transferred_from = self.unit
        self.unit = unit
        self.returned_reason = reason
        self.mediator = ""
        self.mediator_id = ""
        self.accepted_at = 0.0
        self.invite_code = ""

    def set_escalation(self, level: str = "", reason: str = "", at: float = 0.0, **_: Any) -> None:
        self.escalated = level
        self.escalation_reason = reason
        self.escalated_at = at

    def set_reopened(self, at: float = 0.0, **_: Any) -> None:
        """Back to accepted: the old outcome is cleared and the merchant is invited again.
        The rating stays until a new one is given, so an unsatisfied case stays visible to the
        mobile team while it is handled again."""
        self.reopened += 1
        self.reopened_at = at
        self.merchant = ""
        self.invite_code = ""
        self.proposal = ""
        self.agreed = []
        self.settled_at = 0.0
        self.terminated_reason = ""
        self.ended_at = 0.0
        self.closed_at = 0.0

    def set_merchant_first(self, merchant_id: str = "", contact: str = "", due: float = 0.0, **_: Any) -> None:
        self.merchant_id = merchant_id
        self.merchant = contact
        self.self_settle_due = due

    def has_proposal(self, **_: Any) -> bool:
        return bool(self.proposal)

    def set_self_settled(self, at: float = 0.0, **_: Any) -> None:
        self.self_settled = 1
        self.settled_at = at
        self.agreed = ["merchant", "consumer"]

    def set_handed_over(self, reason: str = "", response_due: float = 0.0, **_: Any) -> None:
        """The window ended without a settlement: the handling unit takes over, from now."""
        self.handed_over = reason
        self.merchant = ""
        self.proposal = ""
        self.agreed = []
        self.response_due = response_due

    @property
    def mediable(self) -> bool:
        """Only a complaint is mediated; a report or consult never meets the merchant (issue 6)."""
        return self.kind in ("complaint", "")

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def role_of(self, openid: str) -> str | None:
        if openid and openid == self.consumer:
            return "consumer"
        if openid and openid == self.merchant:
            return "merchant"
        if openid and openid == self.mediator:
            return "mediator"
        return None

    # --- persistence: flat string fields for a Redis hash ------------------------------------
    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, list):
                out[name] = json.dumps(value, ensure_ascii=False)
            else:
                out[name] = str(value)
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "Ticket":
        kwargs: dict[str, Any] = {}
        for name, spec in cls.__dataclass_fields__.items():
            if name not in fields:
                continue
            raw = fields[name]
            kind = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", "")
            if kind.startswith("list"):
                kwargs[name] = json.loads(raw) if raw else []
            elif kind == "float":
                kwargs[name] = float(raw or 0)
            elif kind == "int":
                kwargs[name] = int(float(raw or 0))
            else:
                kwargs[name] = raw
        return cls(**kwargs)


class NotAllowed(Exception):
    """The ticket's state does not allow this step; ``str(exc)`` is the Chinese explanation."""


def fire(ticket: Ticket, trigger: str, **kwargs: Any) -> bool:
    """Run one trigger on the shared machine; raise NotAllowed with a readable reason."""
    # Shared machine, no add_model: every callback is named in TRANSITIONS, so the event can
    # run on a plain model (STYLE.md "C1", ~20 µs instead of ~150 µs per message).
    if trigger in MEDIATION_ONLY and not ticket.mediable:  # issue 6: the reporter stays unknown
        raise NotAllowed(NOT_MEDIABLE)
    try:
        return bool(MACHINE.events[trigger].trigger(ticket, **kwargs))
    except MachineError as exc:
        raise NotAllowed(NOT_NOW.get(trigger, "当前阶段不能执行该操作。")) from exc


def may(ticket: Ticket, trigger: str) -> bool:
    return bool(MACHINE.get_transitions(trigger=trigger, source=ticket.state))

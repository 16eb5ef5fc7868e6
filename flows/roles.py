"""Staff roles and which tickets each role may see. Pure: no Flask, no Redis.

Who may run which operator command is declared on the command itself (handlers/operator.py,
``@operator_command(..., roles=...)``); which *tickets* a role reaches is decided here, once,
so the WeChat commands and the dashboard cannot disagree.
"""

from __future__ import annotations

from typing import Protocol

ROLES = ("intake", "unit", "mobile", "leader", "admin")

ROLE_NAMES = {
    "intake": "接诉员",            # 12315 centre: sees every ticket, takes or re-routes it
    "unit": "承办人员",            # a 科室 or 市场监管所: its own unit's tickets
    "mobile": "机动维权小分队",    # escalated tickets and consumers who were not satisfied
    "leader": "分管领导",          # everything, read-mostly: lists, statistics, escalation
    "admin": "管理员",             # everything
}

# Spellings accepted where a person types a role (CLI): the id or its Chinese name.
ROLE_ALIASES = {**{r: r for r in ROLES}, **{name: r for r, name in ROLE_NAMES.items()},
                "接诉": "intake", "承办": "unit", "机动": "mobile", "小分队": "mobile", "领导": "leader",
                "管理": "admin"}

SEE_ALL = ("intake", "leader", "admin")

UNSATISFIED_AT_MOST = 2
"""A rating of 1 or 2 (of 5) counts as "not satisfied": the mobile team looks at those."""


class _Staff(Protocol):
    id: str
    role: str
    unit: str
    openid: str


class _Ticket(Protocol):
    unit: str
    mediator: str
    mediator_id: str
    escalated: str
    rating: int


def role_name(role: str) -> str:
    return ROLE_NAMES.get(role, role)


def unsatisfied(ticket: _Ticket) -> bool:
    return 0 < ticket.rating <= UNSATISFIED_AT_MOST


def may_see(staff: _Staff, ticket: _Ticket) -> bool:
    """The one rule for a staff member and a ticket (commands, lists and the dashboard)."""
    if staff.role in SEE_ALL:
        return True
    if ticket.mediator_id == staff.id or (staff.openid and ticket.mediator == staff.openid):
        return True  # whoever mediates a ticket keeps it, wherever it was routed
    if staff.role == "unit":
        return bool(staff.unit) and ticket.unit == staff.unit
    if staff.role == "mobile":
        return bool(ticket.escalated) or unsatisfied(ticket)
    return False

"""What handlers receive and give back, and the registry their decorators fill.

A handler gets a ``Context`` (storage, router, staff directory, clock, outbox) and an
``Incoming`` (who said what), returns the passive reply for the sender (``str`` or None)
and puts messages for anyone else in ``ctx.outbox``. The webhook enqueues the outbox only
after the handler returned, so a failed handler never sends half its news.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from flows.routing import Router
from storage.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    openid: str
    kind: str  # text | image | voice | location | event | other
    text: str = ""
    media_id: str = ""
    event: str = ""  # subscribe | subscribe_scan | scan | unsubscribe | click | ...
    event_key: str = ""
    msg_id: str = ""
    create_time: int = 0


@dataclass(frozen=True)
class Outgoing:
    to: str
    text: str
    kind: str = "notice"  # new_ticket | invitation | relay | proposal | result | notice
    ticket: str = ""


@dataclass(frozen=True)
class StaffMember:
    openid: str
    name: str
    unit: str


@dataclass
class Unit:
    id: str
    name: str
    staff: list[StaffMember] = field(default_factory=list)


class Directory:
    """Units and their staff as configured (issue 4 moves staff into Redis with binding)."""

    def __init__(self, units_config: list[dict[str, Any]], intake_unit: str):
        self.units: dict[str, Unit] = {}
        self.staff: dict[str, StaffMember] = {}
        self.intake_unit = intake_unit
        for raw in units_config:
            unit = Unit(id=raw["id"], name=raw.get("name", raw["id"]))
            for person in raw.get("staff") or []:
                if isinstance(person, str):
                    person = {"openid": person}
                member = StaffMember(person["openid"], person.get("name") or "工作人员", unit.id)
                unit.staff.append(member)
                self.staff[member.openid] = member
            self.units[unit.id] = unit

    def unit_name(self, unit_id: str) -> str:
        unit = self.units.get(unit_id)
        return unit.name if unit else unit_id

    def staff_of(self, unit_id: str) -> list[StaffMember]:
        """Who to notify for a unit; a unit with nobody configured falls back to intake."""
        unit = self.units.get(unit_id)
        if unit and unit.staff:
            return unit.staff
        intake = self.units.get(self.intake_unit)
        return intake.staff if intake else []


@dataclass
class Context:
    store: Store
    router: Router
    directory: Directory
    config: dict[str, Any]
    clock: Callable[[], float] = time.time
    outbox: list[Outgoing] = field(default_factory=list)

    def now(self) -> float:
        return self.clock()

    def send(self, to: str, text: str, kind: str = "notice", ticket: str = "") -> None:
        if to:
            self.outbox.append(Outgoing(to=to, text=text, kind=kind, ticket=ticket))


# --- operator commands ------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    name: str
    alias: str
    args: str  # e.g. "no terms..." — names; a trailing "..." takes the rest of the line
    role: str  # who may run it; no default, so no command is public by accident
    help: str
    func: Callable[..., str]

    @property
    def usage(self) -> str:
        return f"/{self.name} " + " ".join(f"<{a.rstrip('.')}>" for a in self.args.split())


COMMANDS: dict[str, Command] = {}


def operator_command(name: str, *, alias: str, args: str, role: str, help: str):
    """Register an operator command. The role is mandatory and enforced in one place."""

    def register(func: Callable[..., str]) -> Callable[..., str]:
        command = Command(name, alias, args, role, help, func)
        COMMANDS[name] = command
        COMMANDS[alias] = command
        return func

    return register


def parse_args(command: Command, text: str) -> dict[str, str] | None:
    """Split the argument text by the command's spec; None when a required one is missing."""
    names = command.args.split()
    values: dict[str, str] = {}
    rest = text.strip()
    for i, name in enumerate(names):
        if name.endswith("..."):
            values[name[:-3]] = rest
            rest = ""
            if not values[name[:-3]]:
                return None
            break
        part, _, rest = rest.partition(" ")
        if not part:
            return None
        values[name] = part
        rest = rest.strip()
    return values


TICKET_NO_RE = re.compile(r"^(?:([A-Za-z]+)-)?(\d{8})-(\d{1,4})$")


def normalise_ticket_no(raw: str, prefix: str) -> str:
    """Staff may type 20261203-0001 or 20261203-1; the stored form is LZ-20261203-0001."""
    match = TICKET_NO_RE.match(raw.strip().upper())
    if not match:
        return raw.strip().upper()
    return f"{match.group(1) or prefix}-{match.group(2)}-{int(match.group(3)):04d}"

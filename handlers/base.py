"""What handlers receive and give back, and the registry their decorators fill.

A handler gets a ``Context`` (storage, router, staff directory, audit trail, clock, outbox)
and an ``Incoming`` (who said what), returns the passive reply for the sender (``str`` or
None) and puts messages for anyone else in ``ctx.outbox``. The webhook enqueues the outbox
only after the handler returned, so a failed handler never sends half its news.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from flows.roles import ROLE_NAMES, ROLES
from flows.routing import Router
from storage.audit import Audit
from storage.staff import StaffRecord, StaffStore
from storage.store import Store

log = logging.getLogger(__name__)

__all__ = ["ROLES", "ROLE_NAMES", "StaffRecord", "Command", "COMMANDS", "Context", "Directory", "Incoming",
           "Outgoing", "Unit", "normalise_ticket_no", "operator_command", "parse_args"]


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


@dataclass
class Unit:
    id: str
    name: str
    staff: list[StaffRecord] = field(default_factory=list)  # listed in the config (bootstrap)


class Directory:
    """Units (from the config) and staff: who is this openid, and whom to tell about a unit.

    Staff are the records in Redis (``StaffStore``: ``staff add`` + ``绑定``). People listed
    under ``units[].staff`` in the config still count, as a bootstrap before anyone is bound:
    role ``intake`` in the intake unit, else ``unit`` (a ``role:`` key overrides). A bound
    record wins over a config entry for the same openid.
    """

    def __init__(self, units_config: list[dict[str, Any]], intake_unit: str, staff_store: StaffStore | None = None):
        self.units: dict[str, Unit] = {}
        self.staff: dict[str, StaffRecord] = {}  # config-listed staff by openid
        self.intake_unit = intake_unit
        self.store = staff_store
        for raw in units_config:
            unit = Unit(id=raw["id"], name=raw.get("name", raw["id"]))
            for person in raw.get("staff") or []:
                if isinstance(person, str):
                    person = {"openid": person}
                role = person.get("role") or ("intake" if unit.id == intake_unit else "unit")
                member = StaffRecord(id=f"config:{person['openid']}", name=person.get("name") or "工作人员",
                                     unit=unit.id, role=role if role in ROLES else "unit", openid=person["openid"])
                unit.staff.append(member)
                self.staff[member.openid] = member
            self.units[unit.id] = unit

    def unit_name(self, unit_id: str) -> str:
        unit = self.units.get(unit_id)
        return unit.name if unit else unit_id

    def find_unit(self, text: str) -> Unit | None:
        """A unit by id, full name, or a part of its name that fits only one unit (staff type
        "稷下所" or "食品经营")."""
        text = (text or "").strip()
        if not text:
            return None
        if text in self.units:
            return self.units[text]
        for unit in self.units.values():
            if unit.name == text:
                return unit
        short = text.removesuffix("所").removesuffix("科")
        hits = [u for u in self.units.values() if short and short in u.name]
        return hits[0] if len(hits) == 1 else None

    def staff_for(self, openid: str) -> StaffRecord | None:
        """Who is this sender, if staff: the one question dispatch asks."""
        if not openid:
            return None
        record = self.store.by_openid(openid) if self.store is not None else None
        return record or self.staff.get(openid)

    def everyone(self) -> list[StaffRecord]:
        """Bound staff (only they can be messaged) plus config-listed ones, one per openid."""
        people: dict[str, StaffRecord] = {}
        for member in self.staff.values():
            people[member.openid] = member
        if self.store is not None:
            for record in self.store.all():
                if record.openid:
                    people[record.openid] = record
        return list(people.values())

    def with_roles(self, *roles: str) -> list[StaffRecord]:
        return [m for m in self.everyone() if m.role in roles]

    def staff_of(self, unit_id: str) -> list[StaffRecord]:
        """Who to notify for a unit: its intake/unit staff; a unit with nobody falls back to intake."""
        people = self.everyone()
        mine = [m for m in people if m.unit == unit_id and m.role in ("unit", "intake")]
        if mine:
            return mine
        return [m for m in people if m.role == "intake"] or [m for m in people if m.unit == self.intake_unit]


@dataclass
class Context:
    store: Store
    router: Router
    directory: Directory
    config: dict[str, Any]
    clock: Callable[[], float] = time.time
    outbox: list[Outgoing] = field(default_factory=list)
    staff: StaffStore | None = None
    audit: Audit | None = None
    clocks: Any = None  # bot.clocks.Clocks: the ticket's deadlines (issue 5)

    def __post_init__(self) -> None:
        # Whoever builds a Context (webhook, dashboard, a clock job) gets a working staff store
        # and audit trail on the same Redis: an audit entry is never skipped for want of one.
        if self.staff is None:
            self.staff = self.directory.store or StaffStore(self.store.r, self.store.keys, clock=self.clock)
        if self.audit is None:
            self.audit = Audit(self.store.r, self.store.keys, clock=self.clock)
        if self.clocks is None:
            # Handlers only schedule and cancel deadlines, and only inside their write pipeline:
            # plain writes, which the decoding connection makes as well as the raw one. Reading
            # jobs back (release_due, the worker) uses Services.clocks on the raw connection.
            from bot.clocks import make_clocks

            self.clocks = make_clocks(self.store.r, self.store.keys, self.clock)

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
    args: str  # e.g. "no terms..."; "x?" is optional; a trailing "x..." takes the rest of the line
    roles: tuple[str, ...]  # who may run it; no default, so no command is public by accident
    help: str
    func: Callable[..., str]

    @property
    def usage(self) -> str:
        parts = [f"/{self.name}"]
        for arg in self.args.split():
            bare = arg.rstrip("?").removesuffix("...")
            parts.append(f"[{bare}]" if arg.endswith("?") else f"<{bare}>")
        return " ".join(parts)

    def allows(self, role: str) -> bool:
        return role in self.roles


COMMANDS: dict[str, Command] = {}


def operator_command(name: str, *, alias: str, args: str, roles: tuple[str, ...], help: str):
    """Register an operator command. ``roles`` is mandatory and enforced in one place
    (handlers.operator.execute); a typo in a role fails at import, not in production."""
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise ValueError(f"/{name}: roles must be a non-empty subset of {ROLES}, got {roles}")

    def register(func: Callable[..., str]) -> Callable[..., str]:
        command = Command(name, alias, args, tuple(roles), help, func)
        COMMANDS[name] = command
        COMMANDS[alias] = command
        return func

    return register


def parse_args(command: Command, text: str) -> dict[str, str] | None:
    """Split the argument text by the command's spec; None when a required one is missing."""
    values: dict[str, str] = {}
    rest = text.strip()
    for name in command.args.split():
        optional = name.endswith("?")
        name = name.rstrip("?")
        if name.endswith("..."):
            values[name[:-3]] = rest
            if not rest and not optional:
                return None
            rest = ""
            break
        part, _, rest = rest.partition(" ")
        rest = rest.strip()
        if not part and not optional:
            return None
        values[name] = part
    return values


TICKET_NO_RE = re.compile(r"^(?:([A-Za-z]+)-)?(\d{8})-(\d{1,4})$")


def normalise_ticket_no(raw: str, prefix: str) -> str:
    """Staff may type 20261203-0001 or 20261203-1; the stored form is LZ-20261203-0001."""
    match = TICKET_NO_RE.match(raw.strip().upper())
    if not match:
        return raw.strip().upper()
    return f"{match.group(1) or prefix}-{match.group(2)}-{int(match.group(3)):04d}"

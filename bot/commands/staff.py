"""``python -m bot staff``: register staff, hand out binding and login codes, remove them.

    staff add --name 李明 --unit food_business --role unit   prints a one-time binding code
    staff list                                               everyone, bound or not
    staff remove S003 | 李明
    staff rebind S003 | 李明                                 a new binding code (lost phone, new WeChat)
    staff password 李明 [--password …]                       dashboard password (else read from stdin)
    staff login-code 李明                                    a one-time dashboard login code (10 minutes)

The person sends ``绑定 <code>`` to the official account from their own WeChat to finish.
``add_staff`` is the code path the demo uses too, so demo staff are registered exactly like real ones.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.config import load_config


def register(sub, common: argparse.ArgumentParser) -> None:
    staff = sub.add_parser("staff", help="staff: register, bind to WeChat, dashboard login, remove")
    actions = staff.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", parents=[common], help="register a person; prints a one-time binding code")
    add.add_argument("--name", required=True, help="the person's name (unique; the dashboard login name)")
    add.add_argument("--unit", default="", help="unit id or name from the config's units (default: the intake unit "
                                                "for intake staff; leaders, admins and the mobile team may have none)")
    add.add_argument("--role", required=True, help="intake | unit | mobile | leader | admin (or 接诉员, 承办人员, …)")
    actions.add_parser("list", parents=[common], help="every staff member: id, name, unit, role, bound or not")
    remove = actions.add_parser("remove", parents=[common], help="remove a staff member (id or name)")
    remove.add_argument("who")
    rebind = actions.add_parser("rebind", parents=[common], help="issue a new binding code (id or name)")
    rebind.add_argument("who")
    password = actions.add_parser("password", parents=[common], help="set the dashboard password")
    password.add_argument("who")
    password.add_argument("--password", help="the password (default: read from stdin)")
    login = actions.add_parser("login-code", parents=[common], help="print a one-time dashboard login code")
    login.add_argument("who")
    staff.set_defaults(func=staff_command)


def add_staff(services, name: str, unit: str, role: str, actor: str = "cli"):
    """Check unit and role against the config, register, audit. Returns (record, binding code).

    ``services``: anything with ``directory``, ``staff`` and ``audit`` (bot.app.Services, or the
    CLI's lighter ``_Tools``). Raises ValueError with a Chinese sentence for anything the config
    does not know."""
    from flows.roles import ROLE_ALIASES, ROLE_NAMES, ROLES

    role_id = ROLE_ALIASES.get((role or "").strip().lower()) or ROLE_ALIASES.get((role or "").strip())
    if role_id is None:
        raise ValueError(f"未知角色 {role}；可选：{'、'.join(f'{r}（{ROLE_NAMES[r]}）' for r in ROLES)}")
    directory = services.directory
    if unit:
        found = directory.find_unit(unit)
        if found is None:
            raise ValueError(f"配置中没有单位 {unit}；可选：{'、'.join(directory.units)}")
        unit_id = found.id
    elif role_id == "intake":
        unit_id = directory.intake_unit
    elif role_id == "unit":
        raise ValueError("承办人员（unit）必须用 --unit 指定所属单位。")
    else:
        unit_id = ""
    record, code = services.staff.add(name, unit_id, role_id)
    services.audit.record(None, actor, "staff_add", f"{record.id} {record.name} {unit_id} {role_id}",
                          name=actor)
    return record, code


@dataclass
class _Tools:
    """What the staff commands need, without the router (jieba) or the delivery queue."""
    directory: Any
    staff: Any
    audit: Any
    store: Any
    redis: Any


def _tools(config: dict[str, Any]) -> _Tools:
    from bot.config import data_dir
    from handlers.base import Directory
    from storage.audit import Audit
    from storage.connection import connect
    from storage.keys import Keys
    from storage.staff import StaffStore
    from storage.store import Store

    handle = connect(config["redis"]["url"], data_dir(config))
    keys = Keys(config["redis"].get("namespace") or "med")
    staff = StaffStore(handle.data, keys)
    directory = Directory(config.get("units") or [], config["routing"].get("fallback_unit", ""), staff)
    return _Tools(directory=directory, staff=staff, audit=Audit(handle.data, keys), store=Store(handle.data, keys),
                  redis=handle)


def staff_command(args: argparse.Namespace) -> int:
    services = _tools(load_config(args.config))
    actor = f"cli:{_user()}"
    try:
        if args.action == "add":
            try:
                record, code = add_staff(services, args.name, args.unit, args.role, actor=actor)
            except ValueError as exc:
                print(f"staff add: {exc}", file=sys.stderr)
                return 2
            print(f"added {record.id} {record.name} "
                  f"({services.directory.unit_name(record.unit) or '-'}, {record.role_name})")
            print(f"binding code: {code}")
            print(f"{record.name} sends “绑定 {code}” to the official account from their own WeChat "
                  "(the code works once, for 3 days).")
            return 0
        if args.action == "list":
            return _list(services)
        record = services.staff.find(args.who)
        if record is None:
            print(f"staff {args.action}: no staff member {args.who!r} (`python -m bot staff list`)", file=sys.stderr)
            return 1
        if args.action == "remove":
            mediating = [t.no for t in services.store.load_tickets(services.store.open_ticket_numbers())
                         if t.mediator_id == record.id or (record.openid and t.mediator == record.openid)]
            services.staff.remove(record.id)
            services.audit.record(None, actor, "staff_remove", f"{record.id} {record.name}", name=actor)
            print(f"removed {record.id} {record.name}")
            if mediating:
                print(f"note: still the mediator of {len(mediating)} open tickets: {' '.join(mediating)}; "
                      "another staff member can /join them")
            return 0
        if args.action == "rebind":
            code = services.staff.issue_bind_code(record.id)
            services.audit.record(None, actor, "staff_rebind", f"{record.id} {record.name}", name=actor)
            print(f"binding code for {record.id} {record.name}: {code}")
            print("the old binding stays until this code is used; then it moves to the new WeChat")
            return 0
        if args.action == "password":
            password = args.password if args.password is not None else _read_password()
            try:
                services.staff.set_password(record.id, password)
            except ValueError as exc:
                print(f"staff password: {exc}", file=sys.stderr)
                return 2
            services.audit.record(None, actor, "staff_password", f"{record.id} {record.name}", name=actor)
            print(f"password set for {record.id} {record.name}")
            return 0
        code = services.staff.issue_login_code(record.id)
        services.audit.record(None, actor, "staff_login_code", f"{record.id} {record.name}", name=actor)
        print(f"one-time dashboard login code for {record.name}: {code} (valid 10 minutes, once)")
        return 0
    finally:
        services.redis.close()


def _list(services) -> int:
    from storage.store import CHINA

    records = services.staff.all()
    configured = [m for m in services.directory.staff.values()
                  if services.staff.by_openid(m.openid) is None]
    if not records and not configured:
        print("no staff yet: `python -m bot staff add --name … --unit … --role …`")
        return 0
    for r in records:
        when = datetime.fromtimestamp(r.created_at, CHINA).strftime("%Y-%m-%d") if r.created_at else "-"
        code = services.staff.pending_bind_code(r.id)
        bound = "bound" if r.openid else (f"not bound (code {code})" if code else "not bound (code expired: rebind)")
        print(f"{r.id:6} {r.name:8} {_unit(services, r.unit):28} {r.role_name:8} {bound}  added {when}")
    for m in configured:
        print(f"{'config':6} {m.name:8} {_unit(services, m.unit):28} {m.role_name:8} listed in config ({m.openid})")
    return 0


def _unit(services, unit: str) -> str:
    return services.directory.unit_name(unit) if unit else "-"


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            print("staff password: the two entries differ", file=sys.stderr)
            raise SystemExit(2)
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in a container is not an error
        return "unknown"

"""Operator commands: staff work tickets from their own WeChat and from the dashboard.

Each command is declared once (``@operator_command``: name, Chinese alias, argument spec,
roles, help). ``execute`` is the one place that checks the role, parses the arguments and
writes the audit entry; the WeChat path (``handlers.dispatch``) and the dashboard both call
it. Which tickets a staff member reaches is ``flows.roles.may_see`` (``can_see`` here), checked
inside the ticket's lock by ``_session``.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator

from flows.mediation import (ESCALATION_LEVELS, OPEN_STATES, TERMINATION_REASONS, NotAllowed, Ticket, fire)
from flows.roles import ROLES, SEE_ALL, may_see, role_name, unsatisfied
from handlers.base import (COMMANDS, Command, Context, Incoming, StaffRecord, normalise_ticket_no, operator_command,
                           parse_args)
from handlers.common import (RATING_PROMPT, Busy, NoSuchTicket, clock_text, mask_phone, relay, settle, ticket_line,
                             ticket_session)
from handlers.merchant import redact, scene_for
from handlers.texts import BUSY, STATE_NAMES
from handlers.trail import audited_session
from storage.store import CHINA

log = logging.getLogger(__name__)

ALL = ROLES
WORK = ("intake", "unit", "mobile", "admin")  # everyone who mediates; leaders read, note and escalate

SLASHES = ("/", "／")  # Chinese keyboards type the full-width one
BIND_RE = re.compile(r"^\s*绑定\s*[:：]?\s*(\d{8})\s*$")
TICKET_NO = re.compile(r"^[A-Z]{1,8}-\d{8}-\d{4}$")
MAX_LINE_CHARS = 2000
LIST_LIMIT = 20

NOT_STAFF = ("以“/”开头的是工作人员命令，您无需使用。\n"
             "如需投诉，请直接用文字描述您遇到的问题；回复“查询”可查看您的工单进度。")

VIEWS = {"mine": "我受理的工单", "unit": "本单位工单", "overdue": "超期未受理的工单", "intake": "待分派的工单"}
VIEW_ALIASES = {**{v: v for v in VIEWS}, "我的": "mine", "本单位": "unit", "本科室": "unit", "单位": "unit",
                "超期": "overdue", "待分派": "intake", "分派": "intake"}
LEVEL_ALIASES = {"mobile": "mobile", "小分队": "mobile", "机动": "mobile", "机动维权小分队": "mobile",
                 "consult": "consult", "会商": "consult", "集体会商": "consult"}
SETTLED_WORDS = {"settled", "成功", "调解成功", "和解成功", "达成协议"}
ACTION_NAMES = {"state": "状态", "note": "备注", "refused": "被拒绝", "bind": "绑定", "join": "加入"}


class Refused(Exception):
    """This staff member may not do this to this ticket; ``str(exc)`` is the Chinese answer."""


class UsageError(Exception):
    """The arguments do not fit; ``str(exc)`` (may be empty) explains, the usage line follows."""


# --- the one entry point --------------------------------------------------------------------------

def execute(ctx: Context, staff: StaffRecord, text: str) -> str:
    """Run one command line ("/take 20261203-1", "take LZ-…", "/受理 …") for ``staff``.

    The one role check, argument parsing and audit entry for every command, from WeChat or
    the dashboard. A refused step clears ``ctx.outbox`` and comes back as its Chinese answer.
    """
    line = text.replace("\u3000", " ").strip()
    if line.startswith(SLASHES):
        line = line[1:].strip()
    line = line[:MAX_LINE_CHARS]
    name, _, rest = line.partition(" ")
    command = COMMANDS.get(name.lower()) or COMMANDS.get(name)
    if command is None:
        ctx.audit.record(None, staff.id, "unknown", line[:200], name=staff.name, result="refused")
        return f"没有 /{name} 这个命令。回复 /help 查看可用命令。"
    args = parse_args(command, rest)
    no = _ticket_no(ctx, args)
    if not command.allows(staff.role):
        # The one enforcement point: nothing below runs for a role the command does not name.
        log.warning("refused /%s for %s %s (role %s)", command.name, staff.id, staff.name, staff.role)
        if no and ctx.store.load_ticket(no) is None:
            no = None  # no timeline stream for a number that is no ticket
        ctx.audit.record(no, staff.id, command.name, _detail(args, rest), name=staff.name, result="refused",
                         reason=f"role {staff.role}")
        allowed = "、".join(role_name(r) for r in command.roles)
        return (f"您（{role_name(staff.role)}）没有执行 /{command.name} 的权限，该命令限{allowed}使用。"
                "回复 /help 查看您可用的命令。")
    result = "ok"
    try:
        if args is None:
            raise UsageError()
        if "no" in args and not TICKET_NO.match(args["no"]):
            raise UsageError("工单号应形如 LZ-20261203-0001，也可只写 20261203-1。")
        answer = command.func(ctx, staff, **args)
    except UsageError as exc:
        ctx.outbox.clear()
        answer, result, no = "\n".join(filter(None, [str(exc), f"用法：{command.usage}", command.help])), "usage", None
    except (Refused, NotAllowed) as exc:
        ctx.outbox.clear()  # a refused step sends nothing to anyone
        answer, result = str(exc), "refused"
    except NoSuchTicket as exc:
        ctx.outbox.clear()
        answer, result, no = f"找不到工单 {exc}。", "refused", None  # no stream for a number that is no ticket
    except Busy:
        ctx.outbox.clear()
        answer, result = BUSY, "busy"
    ctx.audit.record(no, staff.id, command.name, _detail(args, rest), name=staff.name, result=result,
                     reason="" if result == "ok" else answer.splitlines()[0][:200])
    return answer


def _ticket_no(ctx: Context, args: dict[str, str] | None) -> str | None:
    if not args or not args.get("no"):
        return None
    args["no"] = normalise_ticket_no(args["no"], ctx.config["tickets"]["prefix"])
    return args["no"] if TICKET_NO.match(args["no"]) else None


def _detail(args: dict[str, str] | None, rest: str) -> str:
    if args is None:
        return rest[:500]
    return " ".join(v for k, v in args.items() if k != "no" and v)[:500]


# --- who sees what --------------------------------------------------------------------------------

def can_see(ctx: Context, staff: StaffRecord, ticket: Ticket) -> bool:
    return may_see(staff, ticket)


def visible_tickets(ctx: Context, staff: StaffRecord, view: str) -> list[Ticket]:
    """A work list: ``mine`` (I mediate), ``unit`` (my unit's; everything for intake, leaders and
    admins; escalated and unsatisfied ones for the mobile team), ``overdue`` (response deadline
    passed, not yet accepted), ``intake`` (waiting to be routed). Open tickets, soonest due first;
    the mobile team also sees finished ones that are escalated or were rated 1–2."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}")
    tickets = ctx.store.load_tickets(ctx.store.open_ticket_numbers())
    if view == "unit" and staff.role == "mobile":
        finished = [no for no in ctx.store.all_ticket_numbers() if no not in {t.no for t in tickets}]
        tickets += [t for t in ctx.store.load_tickets(finished) if t.escalated or unsatisfied(t)]
    now = ctx.now()
    if view == "mine":
        wanted = [t for t in tickets if t.mediator_id == staff.id or (staff.openid and t.mediator == staff.openid)]
    elif view == "unit":
        wanted = [t for t in tickets if staff.role in SEE_ALL or staff.role == "mobile" or t.unit == staff.unit]
    elif view == "overdue":
        wanted = [t for t in tickets if t.state == "submitted" and 0 < t.response_due < now]
    else:
        wanted = [t for t in tickets if t.state == "submitted" and t.unit == ctx.directory.intake_unit]
    return sorted((t for t in wanted if can_see(ctx, staff, t)), key=lambda t: (t.response_due or float("inf"), t.no))


@contextmanager
def _session(ctx: Context, staff: StaffRecord, no: str) -> Iterator[tuple[Ticket, Any]]:
    """Lock, read, check the staff member may reach this ticket, let the command change it,
    write it with the audit entry of any state change: all in one MULTI/EXEC."""
    with audited_session(ctx, no, staff.id, staff.name) as (ticket, pipe):
        if not can_see(ctx, staff, ticket):
            raise Refused(_not_yours(ctx, staff, ticket))
        yield ticket, pipe


def _visible(ctx: Context, staff: StaffRecord, no: str) -> Ticket:
    ticket = ctx.store.load_ticket(no)
    if ticket is None:
        raise NoSuchTicket(no)
    if not can_see(ctx, staff, ticket):
        raise Refused(_not_yours(ctx, staff, ticket))
    return ticket


def _not_yours(ctx: Context, staff: StaffRecord, ticket: Ticket) -> str:
    return f"工单 {ticket.no} 属于{ctx.directory.unit_name(ticket.unit)}，不在您（{role_name(staff.role)}）的处理范围内。"


def _restart_response(ctx: Context, ticket: Ticket) -> None:
    """退单/转办: the unit that now has the ticket owes the consumer an answer within its own
    response window; the ticket's clocks move with it (handlers.clocks.sync)."""
    ticket.responded_at = 0.0
    ticket.response_due = ctx.now() + float(ctx.config["tickets"]["response_hours"]) * 3600


def _release(ctx: Context, ticket: Ticket, mediator: str, invite_code: str, pipe: Any) -> None:
    """After 退单/转办: the old invitation stops working and the old mediator leaves the room."""
    if invite_code:
        ctx.store.drop_invite(invite_code, pipeline=pipe)
    if mediator and ctx.store.load_user(mediator).get("mediating") == ticket.no:
        ctx.store.save_user(mediator, {"mediating": ""}, pipeline=pipe)


# --- WeChat-only steps: binding, talking in a room, the hint -----------------------------------

def bind_code_in(text: str) -> str | None:
    match = BIND_RE.match(text or "")
    return match.group(1) if match else None


def bind(ctx: Context, openid: str, code: str) -> str:
    """``绑定 <code>``: tie this WeChat user to the staff record the code was issued for."""
    if ctx.staff.bind_locked(openid):
        log.warning("binding refused for %s: too many wrong codes", openid)
        return "绑定码错误次数过多，请一小时后再试，或请管理员重新生成绑定码。"
    current = ctx.directory.staff_for(openid)
    record = ctx.staff.bind(code, openid)
    if record is None:
        if current is not None and not current.id.startswith("config:"):
            return f"您的微信已绑定为工作人员“{current.name}”，不能再绑定其他人。如需更换请联系管理员。"
        return "绑定码无效、已使用或已过期，请向管理员核对。"
    ctx.audit.record(None, record.id, "bind", "绑定微信", name=record.name)
    log.info("staff %s %s bound a WeChat account", record.id, record.name)
    unit = f"{ctx.directory.unit_name(record.unit)}的" if record.unit else ""  # mobile team, leaders: no unit
    return (f"绑定成功！{record.name}，您是{unit}{role_name(record.role)}。\n"
            "发送 /help 查看您可用的命令。")


def talk(ctx: Context, staff: StaffRecord, msg: Incoming, no: str) -> str | None:
    """Plain text from a mediator inside an active mediation goes to both parties."""
    with ticket_session(ctx, no) as (ticket, pipe):
        if ticket.mediator != staff.openid or ticket.state not in ("mediating", "proposal"):
            return None
        relay(ctx, ticket, "mediator", msg.text.strip(), pipe)
        return ""


def idle_hint(ctx: Context, staff: StaffRecord) -> str:
    """Staff writing plain text outside any mediation: a hint, never a complaint intake."""
    return (f"您好，{staff.name}（{role_name(staff.role)}）。您当前不在任何调解中，文字不会转给当事人。\n"
            "发送 /list 查看工单，/join <工单号> 进入调解，/help 查看全部命令。")


# --- the commands ---------------------------------------------------------------------------------

@operator_command("help", alias="帮助", args="", roles=ALL, help="列出您可用的命令")
def help_command(ctx: Context, staff: StaffRecord) -> str:
    seen: list[Command] = []
    for command in COMMANDS.values():
        if command not in seen and command.allows(staff.role):
            seen.append(command)
    lines = [f"{staff.name}｜{ctx.directory.unit_name(staff.unit)}｜{role_name(staff.role)}", "可用命令："]
    lines += [f"{c.usage}（/{c.alias}）：{c.help}" for c in seen]
    lines.append("工单号可只写日期和序号，如 20261203-1。")
    return "\n".join(lines)


@operator_command("list", alias="列表", args="view?", roles=ALL,
                  help="工单列表：mine 我受理的｜unit 本单位｜overdue 超期未受理｜intake 待分派")
def list_command(ctx: Context, staff: StaffRecord, view: str = "") -> str:
    key = VIEW_ALIASES.get(view.lower()) if view else ("intake" if staff.role == "intake" else "unit")
    if key is None:
        raise UsageError(f"没有“{view}”这个列表。")
    tickets = visible_tickets(ctx, staff, key)
    if not tickets:
        return f"没有{VIEWS[key]}。"
    now = ctx.now()
    lines = [f"{VIEWS[key]}（{len(tickets)} 件）："]
    for ticket in tickets[:LIST_LIMIT]:
        late = "【超期】" if ticket.state == "submitted" and 0 < ticket.response_due < now else ""
        lines.append(late + ticket_line(ticket, ctx.directory.unit_name(ticket.unit))
                     + (f"｜响应期限 {clock_text(ticket.response_due)}" if ticket.state == "submitted" else ""))
    if len(tickets) > LIST_LIMIT:
        lines.append(f"……另有 {len(tickets) - LIST_LIMIT} 件，请在工作台查看。")
    return "\n".join(lines)


@operator_command("show", alias="查看", args="no", roles=ALL, help="工单详情：事实、当事人（电话已遮盖）、时间线")
def show_command(ctx: Context, staff: StaffRecord, no: str) -> str:
    t = _visible(ctx, staff, no)
    mediator = _staff_label(ctx, t)
    lines = [
        f"工单 {t.no}｜{STATE_NAMES.get(t.state, t.state)}｜{ctx.directory.unit_name(t.unit)}",
        f"类别：{_category_label(ctx, t.category)}（关键词：{'、'.join(t.keywords) or '无'}）",
        f"商家：{t.merchant_name or '未填'}｜诉求：{t.demand or '未填'}",
        f"经过：{redact(t.facts[:200])}",
        f"消费者电话：{mask_phone(t.phone)}｜商家：{'已加入调解' if t.merchant else '未加入'}"
        f"｜调解员：{mediator or '无'}｜证据图片 {len(t.photos)} 张",
    ]
    if t.state == "submitted" and t.response_due:
        lines.append(f"响应期限：{clock_text(t.response_due)}" + ("（已超期）" if t.response_due < ctx.now() else ""))
    if t.escalated:
        lines.append(f"已上报{ESCALATION_LEVELS.get(t.escalated, t.escalated)}：{t.escalation_reason}")
    if t.proposal:
        lines.append(f"方案：{t.proposal}（已同意：{'、'.join(_party(r) for r in t.agreed) or '无'}）")
    if t.terminated_reason:
        lines.append(f"终止原因：{t.terminated_reason}")
    if t.rating:
        lines.append(f"评价：{t.rating} 分")
    timeline = ctx.audit.timeline(t.no)[-8:]
    if timeline:
        lines.append("时间线（最近 8 条）：")
        lines += [_timeline_line(entry) for entry in timeline]
    return "\n".join(lines)


def _category_label(ctx: Context, category: str) -> str:
    for row in ctx.config.get("routing", {}).get("categories") or []:
        if row.get("id") == category:
            return row.get("label") or category
    return category or "未分类"


def _staff_label(ctx: Context, ticket: Ticket) -> str:
    record = ctx.staff.get(ticket.mediator_id) if ticket.mediator_id else None
    record = record or ctx.directory.staff_for(ticket.mediator)
    return record.name if record else ("已指派" if ticket.mediator else "")


def _party(role: str) -> str:
    return {"consumer": "消费者", "merchant": "商家"}.get(role, role)


def _timeline_line(entry: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(entry["at"], CHINA).strftime("%m-%d %H:%M")
    who = entry.get("name") or entry["actor"]
    command = COMMANDS.get(entry["action"])
    what = command.alias if command else ACTION_NAMES.get(entry["action"], entry["action"])
    if entry.get("result") and entry["result"] != "ok":
        what += "（未执行）"
    detail = f" {entry['detail']}" if entry.get("detail") else ""
    return f"{when} {who} {what}{detail}"


@operator_command("take", alias="受理", args="no", roles=WORK, help="受理工单并担任调解员")
def take_command(ctx: Context, staff: StaffRecord, no: str) -> str:
    with _session(ctx, staff, no) as (ticket, pipe):
        fire(ticket, "accept")
        ticket.mediator = staff.openid
        ticket.mediator_id = staff.id
        ticket.accepted_at = ctx.now()
        ticket.responded_at = ticket.responded_at or ctx.now()  # stops the 24-hour clock (issue 5)
        if staff.openid:
            ctx.store.save_user(staff.openid, {"mediating": ticket.no}, pipeline=pipe)
        ctx.store.append_transcript(ticket.no, "system", f"{staff.name}受理", pipeline=pipe, event="accepted")
        unit_name = ctx.directory.unit_name(ticket.unit)
        if ticket.kind == "report":  # a report is checked, never mediated: no word of the merchant
            notice = f"您的举报 {ticket.no} 已由【{unit_name}】受理，核查结果将依法告知。"
        elif ticket.kind == "consult":
            notice = f"您的咨询 {ticket.no} 已由【{unit_name}】受理，工作人员会尽快答复。"
        else:
            notice = f"您的工单 {ticket.no} 已由【{unit_name}】受理，调解员正在联系商家。"
        ctx.send(ticket.consumer, notice, kind="notice", ticket=ticket.no)
    if ticket.kind != "complaint":
        return f"已受理 {no}。"
    return f"已受理 {no}。用 /invite {no} 生成商家邀请码。"


@operator_command("reply", alias="答复", args="no text...", roles=WORK,
                  help="答复消费者（受理前也可）：文字发给消费者并记入工单，算作24小时内的响应")
def reply_command(ctx: Context, staff: StaffRecord, no: str, text: str) -> str:
    with _session(ctx, staff, no) as (ticket, pipe):
        if not ticket.is_open:
            raise Refused(f"工单 {no} 已经结束；如需继续处理，请先 /reopen {no} <原因>。")
        ticket.responded_at = ticket.responded_at or ctx.now()  # stops the 24-hour clock
        ctx.store.append_transcript(ticket.no, "mediator", text, pipeline=pipe, event="replied", staff=staff.id)
        ctx.send(ticket.consumer, f"【{ctx.directory.unit_name(ticket.unit)}】关于工单 {ticket.no}：{text}",
                 kind="notice", ticket=ticket.no)
    return f"已答复消费者（工单 {no}）。"


@operator_command("return", alias="退单", args="no reason...", roles=("unit", "mobile", "admin"),
                  help="退单：退回接诉员重新分派，须写明原因（商家加入调解前）")
def return_command(ctx: Context, staff: StaffRecord, no: str, reason: str) -> str:
    intake = ctx.directory.intake_unit
    with _session(ctx, staff, no) as (ticket, pipe):
        if ticket.unit == intake and ticket.state == "submitted":
            raise Refused(f"工单 {no} 已在{ctx.directory.unit_name(intake)}待分派，无需退单。")
        old_unit, mediator, code = ticket.unit, ticket.mediator, ticket.invite_code
        fire(ticket, "send_back", unit=intake, reason=reason)
        _restart_response(ctx, ticket)
        _release(ctx, ticket, mediator, code, pipe)
        ctx.store.append_transcript(ticket.no, "system", f"{ctx.directory.unit_name(old_unit)}退单：{reason}",
                                    pipeline=pipe, event="returned")
        for member in ctx.directory.staff_of(intake):
            ctx.send(member.openid,
                     f"退单 {ticket.no}：{ctx.directory.unit_name(old_unit)}（{staff.name}）退回，原因：{reason}\n"
                     f"商家：{ticket.merchant_name}｜诉求：{ticket.demand}\n"
                     f"请 /transfer {ticket.no} <单位> 重新分派，或 /take {ticket.no} 自行受理。",
                     kind="new_ticket", ticket=ticket.no)
    return f"已将 {no} 退回{ctx.directory.unit_name(intake)}重新分派。原因：{reason}"


@operator_command("transfer", alias="转办", args="no unit", roles=("intake", "admin"),
                  help="转办：把工单分派给另一个单位（科室或市场监管所，写编号或名称）")
def transfer_command(ctx: Context, staff: StaffRecord, no: str, unit: str) -> str:
    target = ctx.directory.find_unit(unit)
    if target is None:
        choices = "、".join(f"{u.id}（{u.name}）" for u in ctx.directory.units.values())
        raise UsageError(f"没有单位“{unit}”。可选：{choices}")
    with _session(ctx, staff, no) as (ticket, pipe):
        if ticket.unit == target.id:
            raise Refused(f"工单 {no} 已在{target.name}。")
        mediator, code = ticket.mediator, ticket.invite_code
        fire(ticket, "transfer", unit=target.id)
        _restart_response(ctx, ticket)
        _release(ctx, ticket, mediator, code, pipe)
        ctx.store.append_transcript(ticket.no, "system", f"转办至{target.name}", pipeline=pipe, event="transferred")
        for member in ctx.directory.staff_of(target.id):
            ctx.send(member.openid,
                     f"转办工单 {ticket.no}（{staff.name}转来）\n商家：{ticket.merchant_name}\n诉求：{ticket.demand}\n"
                     f"经过：{ticket.facts[:200]}\n回复 /take {ticket.no} 受理。",
                     kind="new_ticket", ticket=ticket.no)
        ctx.send(ticket.consumer, f"您的工单 {ticket.no} 已转交【{target.name}】处理。", kind="notice", ticket=ticket.no)
    return f"已将 {no} 转办至{target.name}。"


@operator_command("note", alias="备注", args="no text...", roles=ALL, help="内部备注：只记入时间线，不会发给任何当事人")
def note_command(ctx: Context, staff: StaffRecord, no: str, text: str) -> str:
    _visible(ctx, staff, no)  # execute's audit entry is the note itself
    return f"已为 {no} 记录内部备注（当事人看不到）。"


@operator_command("invite", alias="邀请", args="no", roles=WORK, help="生成商家邀请码和二维码场景值")
def invite_command(ctx: Context, staff: StaffRecord, no: str) -> str:
    with _session(ctx, staff, no) as (ticket, pipe):
        fire(ticket, "invite")
        if ticket.invite_code:
            ctx.store.drop_invite(ticket.invite_code, pipeline=pipe)
        ticket.invite_code = ctx.store.create_invite(ticket.no)
        ticket.invited_at = ctx.now()  # the merchant-join clocks count from here (issue 5)
        code = ticket.invite_code
    return (f"工单 {no} 的商家邀请码：{code}\n二维码场景值：{scene_for(code)}\n"
            f"请商家关注本公众号后发送“{code}”，或扫描该场景值的二维码，即可加入调解。")


@operator_command("join", alias="加入", args="no", roles=WORK,
                  help="进入工单的调解并担任调解员；此后您发的文字会转给消费者和商家")
def join_command(ctx: Context, staff: StaffRecord, no: str) -> str:
    if not staff.openid:
        raise Refused("请先在微信中向本公众号发送“绑定 <绑定码>”，才能进入调解。")
    with _session(ctx, staff, no) as (ticket, pipe):
        if ticket.state == "submitted":
            raise Refused(f"工单 {no} 尚未受理，请先 /take {no}。")
        if not ticket.is_open:
            raise Refused(f"工单 {no} 已经结束；如需继续处理，请先 /reopen {no} <原因>。")
        previous = ticket.mediator
        if previous != staff.openid:
            ticket.mediator, ticket.mediator_id = staff.openid, staff.id
            ctx.store.append_transcript(ticket.no, "system", f"调解员变更为{staff.name}", pipeline=pipe,
                                        event="mediator_changed")
            if previous:
                if ctx.store.load_user(previous).get("mediating") == ticket.no:
                    ctx.store.save_user(previous, {"mediating": ""}, pipeline=pipe)
                ctx.send(previous, f"工单 {ticket.no} 的调解已由{staff.name}接手。", ticket=ticket.no)
            for party in (ticket.consumer, ticket.merchant):
                ctx.send(party, f"工单 {ticket.no} 的调解员已更换，请继续在此沟通。", ticket=ticket.no)
        ctx.store.save_user(staff.openid, {"mediating": ticket.no}, pipeline=pipe)
    return f"您已进入工单 {no} 的调解。直接发送文字即转给消费者和商家；/leave 离开。"


@operator_command("leave", alias="离开", args="", roles=WORK, help="离开当前调解：您发的文字不再转给当事人")
def leave_command(ctx: Context, staff: StaffRecord) -> str:
    room = ctx.store.load_user(staff.openid).get("mediating") if staff.openid else ""
    if not room:
        return "您当前不在任何调解中。"
    ctx.store.save_user(staff.openid, {"mediating": ""})
    return (f"已离开工单 {room} 的调解。您仍是它的调解员，当事人的消息仍会转给您；"
            f"用 /join {room} 回来。")


@operator_command("propose", alias="方案", args="no terms...", roles=WORK, help="提出调解方案，请双方确认")
def propose_command(ctx: Context, staff: StaffRecord, no: str, terms: str) -> str:
    with _session(ctx, staff, no) as (ticket, pipe):
        fire(ticket, "propose", terms=terms)
        ticket.proposed_at = ctx.now()  # the answer clocks count from here (issue 5)
        ctx.store.append_transcript(ticket.no, "mediator", f"调解方案：{terms}", pipeline=pipe, event="proposal")
        text = f"调解员提出调解方案（工单 {ticket.no}）：\n{terms}\n同意请回复“同意”，不同意请回复“不同意”。"
        ctx.send(ticket.consumer, text, kind="proposal", ticket=ticket.no)
        ctx.send(ticket.merchant, text, kind="proposal", ticket=ticket.no)
    return "方案已发给双方，等待确认。"


@operator_command("close", alias="终止", args="no reason...", roles=WORK,
                  help="终止调解：原因填 1～8（办法第二十三条），可附说明；双方已在线下达成协议填 settled 和协议内容；"
                       "举报、咨询工单写明处理结果即可")
def close_command(ctx: Context, staff: StaffRecord, no: str, reason: str) -> str:
    code, _, more = reason.strip().partition(" ")
    more = more.strip()
    if code.lower() in SETTLED_WORDS:
        return _settled_offline(ctx, staff, no, more)
    with _session(ctx, staff, no) as (ticket, pipe):
        # A 举报 or 咨询 (issue 6) is never mediated: the statutory reasons are for ending a
        # mediation, so those tickets close with the result in words.
        mediated = getattr(ticket, "mediable", True)
        if code in TERMINATION_REASONS:
            reason_text = TERMINATION_REASONS[code] + (f"（{more}）" if more else "")
        elif not mediated:
            reason_text = reason.strip()
        else:
            reasons = "\n".join(f"{k}. {v}" for k, v in TERMINATION_REASONS.items())
            raise UsageError(f"终止原因请填编号：\n{reasons}\n双方已达成协议请填：settled <协议内容>")
        fire(ticket, "terminate", reason=reason_text, at=ctx.now())
        ctx.store.append_transcript(ticket.no, "system", f"{'终止调解' if mediated else '办结'}：{reason_text}",
                                    pipeline=pipe, event="terminated")
        text = (f"工单 {ticket.no} 终止调解。原因：{reason_text}" if mediated
                else f"工单 {ticket.no} 已处理完毕：{reason_text}")
        ctx.send(ticket.merchant, text, kind="result", ticket=ticket.no)
        ctx.send(ticket.consumer, f"{text}\n\n{RATING_PROMPT}", kind="result", ticket=ticket.no)
    return f"已终止 {no}：{reason_text}" if mediated else f"已办结 {no}：{reason_text}"


def _settled_offline(ctx: Context, staff: StaffRecord, no: str, terms: str) -> str:
    """The parties agreed outside the proposal step (by phone, on site): record the settlement."""
    if not terms:
        raise UsageError("请写明双方达成的协议内容，例如：/close 20261203-1 settled 商家退款50元")
    with _session(ctx, staff, no) as (ticket, pipe):
        fire(ticket, "settle", terms=terms)
        ctx.store.append_transcript(ticket.no, "mediator", f"调解员记录：双方已达成协议：{terms}", pipeline=pipe,
                                    event="settled_offline")
        settle(ctx, ticket, pipe)
    return f"已记录 {no} 调解成功：{terms}"


@operator_command("remind", alias="催办", args="no", roles=WORK,
                  help="提醒当事人：待答复方案的一方、调解中的双方，或尚未评价的消费者")
def remind_command(ctx: Context, staff: StaffRecord, no: str) -> str:
    with _session(ctx, staff, no) as (ticket, pipe):
        if ticket.state == "proposal":
            waiting = [r for r in ("consumer", "merchant") if r not in ticket.agreed]
            text = (f"提醒：工单 {ticket.no} 的调解方案还在等您答复：\n{ticket.proposal}\n"
                    "同意请回复“同意”，不同意请回复“不同意”。")
        elif ticket.state == "mediating":
            waiting = ["consumer", "merchant"]
            text = f"提醒：工单 {ticket.no} 的调解正在进行，请及时回复调解员和对方的消息。"
        elif ticket.state in ("settled", "terminated"):
            waiting = ["consumer"]
            text = f"工单 {ticket.no} 已结束。{RATING_PROMPT}"
        elif ticket.state == "accepted":
            raise Refused(f"商家尚未加入调解，无法提醒；请用 /invite {no} 重新生成邀请码交给商家。")
        else:
            raise Refused(f"工单 {no} {STATE_NAMES.get(ticket.state, ticket.state)}，没有需要提醒的当事人。")
        who = "、".join(_party(r) for r in waiting)
        for role in waiting:
            ctx.send(ticket.consumer if role == "consumer" else ticket.merchant, text, kind="notice", ticket=ticket.no)
        ctx.store.append_transcript(ticket.no, "system", f"提醒{who}", pipeline=pipe, event="reminded")
    return f"已提醒{who}（工单 {no}）。"


@operator_command("escalate", alias="上报", args="no level reason...", roles=("intake", "unit", "leader", "admin"),
                  help="上报：level 填 小分队（机动维权小分队）或 会商（集体会商），并写明原因")
def escalate_command(ctx: Context, staff: StaffRecord, no: str, level: str, reason: str) -> str:
    key = LEVEL_ALIASES.get(level.lower())
    if key is None:
        raise UsageError(f"上报对象“{level}”不认识，请填 小分队 或 会商。")
    label = ESCALATION_LEVELS[key]
    with _session(ctx, staff, no) as (ticket, pipe):
        fire(ticket, "escalate", level=key, reason=reason, at=ctx.now())
        roles = ("mobile",) if key == "mobile" else ("mobile", "leader")
        recipients = [m for m in ctx.directory.with_roles(*roles) if m.openid != staff.openid]
        for member in recipients:
            ctx.send(member.openid,
                     f"【上报·{label}】工单 {ticket.no}（{ctx.directory.unit_name(ticket.unit)}，"
                     f"{STATE_NAMES.get(ticket.state, ticket.state)}）\n原因：{reason}\n上报人：{staff.name}\n"
                     f"回复 /show {ticket.no} 查看详情。",
                     kind="notice", ticket=ticket.no)
    if not recipients:
        return f"已将 {no} 上报{label}并记录在案；目前没有{label}成员绑定微信，请另行通知。"
    return f"已将 {no} 上报{label}，已通知 {len(recipients)} 人。"


@operator_command("reopen", alias="重启", args="no reason...", roles=("intake", "mobile", "leader", "admin"),
                  help="重新开启已结束的工单（回到已受理，需重新邀请商家），须写明原因")
def reopen_command(ctx: Context, staff: StaffRecord, no: str, reason: str) -> str:
    with _session(ctx, staff, no) as (ticket, pipe):
        fire(ticket, "reopen", at=ctx.now())
        ctx.store.append_transcript(ticket.no, "system", f"工单重新开启：{reason}", pipeline=pipe, event="reopened")
        # The consumer's messages reach this ticket again, unless they are busy with another one.
        busy_with = ctx.store.load_user(ticket.consumer).get("ticket")
        if not busy_with or busy_with == ticket.no:
            ctx.store.save_user(ticket.consumer, {"ticket": ticket.no}, pipeline=pipe)
        ctx.send(ticket.consumer, f"您的工单 {ticket.no} 已重新开启，工作人员将继续处理。", ticket=ticket.no)
        if ticket.mediator and ticket.mediator != staff.openid:
            ctx.send(ticket.mediator, f"工单 {ticket.no} 已由{staff.name}重新开启：{reason}\n"
                                      f"请用 /invite {ticket.no} 重新邀请商家。", ticket=ticket.no)
    return f"已重新开启 {no}（已受理）。请用 /invite {no} 重新邀请商家；如需由您调解，先 /join {no}。"


@operator_command("stats", alias="统计", args="", roles=ALL, help="今日和本周统计（本单位；接诉员、领导、管理员看全局）")
def stats_command(ctx: Context, staff: StaffRecord) -> str:
    tickets = [t for t in ctx.store.load_tickets(ctx.store.all_ticket_numbers()) if can_see(ctx, staff, t)]
    now = ctx.now()
    today = datetime.fromtimestamp(now, CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    scope = "全局" if staff.role in SEE_ALL else (
        "上报和不满意的工单" if staff.role == "mobile" else ctx.directory.unit_name(staff.unit))
    lines = [f"统计（{scope}）"]
    for label, start in (("今日", today.timestamp()), ("本周", week.timestamp())):
        lines.append(f"{label}：{_period_counts(tickets, start)}")
    open_now = [t for t in tickets if t.state in OPEN_STATES]
    late = [t for t in open_now if t.state == "submitted" and 0 < t.response_due < now]
    lines.append(f"当前在办 {len(open_now)} 件，其中超期未受理 {len(late)} 件。")
    if staff.role in SEE_ALL:
        counts: dict[str, int] = {}
        for t in tickets:
            if t.created_at >= week.timestamp():
                counts[t.unit] = counts.get(t.unit, 0) + 1
        top = sorted(counts.items(), key=lambda item: -item[1])[:6]
        if top:
            lines.append("本周新收最多：" + "、".join(f"{ctx.directory.unit_name(u)} {n}" for u, n in top))
    return "\n".join(lines)


def _period_counts(tickets: list[Ticket], start: float) -> str:
    new = sum(t.created_at >= start for t in tickets)
    accepted = sum(t.accepted_at >= start for t in tickets)
    settled = sum(t.settled_at >= start for t in tickets)
    terminated = sum(t.ended_at >= start and bool(t.terminated_reason) for t in tickets)
    closed = sum(t.closed_at >= start for t in tickets)
    rated = [t.rating for t in tickets if t.closed_at >= start and t.rating]
    text = f"新收 {new}｜受理 {accepted}｜调解成功 {settled}｜终止 {terminated}｜办结 {closed}"
    if settled + terminated:
        text += f"｜成功率 {settled * 100 // (settled + terminated)}%"
    if rated:
        text += f"｜满意度 {sum(rated) / len(rated):.1f} 分（{len(rated)} 条评价）"
    return text

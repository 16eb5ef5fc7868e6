"""Operator commands: staff of a handling unit work tickets from their own WeChat.

Each command is declared once with its name, Chinese alias, arguments, role and help;
``run`` is the one place that checks the role and parses arguments.
"""

from __future__ import annotations

import logging

from flows.mediation import OPEN_STATES, TERMINATION_REASONS, fire
from handlers.base import COMMANDS, Context, Incoming, StaffMember, normalise_ticket_no, operator_command, parse_args
from handlers.common import RATING_PROMPT, clock_text, relay, ticket_line, ticket_session
from handlers.merchant import scene_for

log = logging.getLogger(__name__)

STAFF = "staff"


def run(ctx: Context, member: StaffMember, msg: Incoming) -> str:
    name, _, rest = msg.text.strip().lstrip("/").partition(" ")
    command = COMMANDS.get(name.lower()) or COMMANDS.get(name)
    if command is None:
        return f"没有 /{name} 这个命令。回复 /help 查看可用命令。"
    if command.role != STAFF:  # one enforcement point; issue 4 brings finer roles
        log.warning("refused /%s for %s", command.name, member.openid)
        return "您没有执行该命令的权限。"
    args = parse_args(command, rest)
    if args is None:
        return f"用法：{command.usage}\n{command.help}"
    if "no" in args:
        args["no"] = normalise_ticket_no(args["no"], ctx.config["tickets"]["prefix"])
    return command.func(ctx, member, **args)


def _check_unit(ctx: Context, member: StaffMember, unit: str) -> str | None:
    if member.unit in (unit, ctx.directory.intake_unit):
        return None
    return f"该工单属于{ctx.directory.unit_name(unit)}，不是您的科室。"


@operator_command("help", alias="帮助", args="", role=STAFF, help="列出可用命令")
def help_command(ctx: Context, member: StaffMember) -> str:
    seen = []
    for command in COMMANDS.values():
        if command not in seen:
            seen.append(command)
    return "可用命令：\n" + "\n".join(f"{c.usage}（{c.alias}）：{c.help}" for c in seen)


@operator_command("list", alias="列表", args="", role=STAFF, help="本科室未办结的工单")
def list_command(ctx: Context, member: StaffMember) -> str:
    lines = []
    for no in ctx.store.open_ticket_numbers():
        ticket = ctx.store.load_ticket(no)
        if ticket and ticket.state in OPEN_STATES and _check_unit(ctx, member, ticket.unit) is None:
            lines.append(ticket_line(ticket, ctx.directory.unit_name(ticket.unit))
                         + f"｜响应期限 {clock_text(ticket.response_due)}")
    return "未办结工单：\n" + "\n".join(lines) if lines else "本科室没有未办结的工单。"


@operator_command("take", alias="受理", args="no", role=STAFF, help="受理工单并担任调解员")
def take_command(ctx: Context, member: StaffMember, no: str) -> str:
    with ticket_session(ctx, no) as (ticket, pipe):
        refused = _check_unit(ctx, member, ticket.unit)
        if refused:
            return refused
        fire(ticket, "accept")
        ticket.mediator = member.openid
        ticket.accepted_at = ctx.now()
        ctx.store.save_user(member.openid, {"mediating": ticket.no}, pipeline=pipe)
        ctx.store.append_transcript(ticket.no, "system", f"{member.name}受理", pipeline=pipe, event="accepted")
        ctx.send(ticket.consumer,
                 f"您的工单 {ticket.no} 已由【{ctx.directory.unit_name(ticket.unit)}】受理，调解员正在联系商家。",
                 kind="notice", ticket=ticket.no)
    return f"已受理 {no}。用 /invite {no} 生成商家邀请码。"


@operator_command("invite", alias="邀请", args="no", role=STAFF, help="生成商家邀请码和二维码场景值")
def invite_command(ctx: Context, member: StaffMember, no: str) -> str:
    with ticket_session(ctx, no) as (ticket, pipe):
        refused = _check_unit(ctx, member, ticket.unit)
        if refused:
            return refused
        fire(ticket, "invite")
        if ticket.invite_code:
            ctx.store.drop_invite(ticket.invite_code, pipeline=pipe)
        ticket.invite_code = ctx.store.create_invite(ticket.no)
        code = ticket.invite_code
    return (f"工单 {no} 的商家邀请码：{code}\n二维码场景值：{scene_for(code)}\n"
            f"请商家关注本公众号后发送“{code}”，或扫描该场景值的二维码，即可加入调解。")


@operator_command("propose", alias="方案", args="no terms...", role=STAFF, help="提出调解方案，请双方确认")
def propose_command(ctx: Context, member: StaffMember, no: str, terms: str) -> str:
    with ticket_session(ctx, no) as (ticket, pipe):
        refused = _check_unit(ctx, member, ticket.unit)
        if refused:
            return refused
        fire(ticket, "propose", terms=terms)
        ctx.store.append_transcript(ticket.no, "mediator", f"调解方案：{terms}", pipeline=pipe, event="proposal")
        text = f"调解员提出调解方案（工单 {ticket.no}）：\n{terms}\n同意请回复“同意”，不同意请回复“不同意”。"
        ctx.send(ticket.consumer, text, kind="proposal", ticket=ticket.no)
        ctx.send(ticket.merchant, text, kind="proposal", ticket=ticket.no)
    return f"方案已发给双方，等待确认。"


@operator_command("close", alias="终止", args="no reason...", role=STAFF,
                  help="终止调解；原因可写 1～8（办法第二十三条）或文字")
def close_command(ctx: Context, member: StaffMember, no: str, reason: str) -> str:
    reason_text = TERMINATION_REASONS.get(reason.strip(), reason.strip())
    with ticket_session(ctx, no) as (ticket, pipe):
        refused = _check_unit(ctx, member, ticket.unit)
        if refused:
            return refused
        fire(ticket, "terminate", reason=reason_text, at=ctx.now())
        ctx.store.append_transcript(ticket.no, "system", f"终止调解：{reason_text}", pipeline=pipe,
                                    event="terminated")
        text = f"工单 {ticket.no} 终止调解。原因：{reason_text}"
        ctx.send(ticket.merchant, text, kind="result", ticket=ticket.no)
        ctx.send(ticket.consumer, f"{text}\n\n{RATING_PROMPT}", kind="result", ticket=ticket.no)
    return f"已终止 {no}：{reason_text}"


def talk(ctx: Context, member: StaffMember, msg: Incoming, no: str) -> str | None:
    """Plain text from a mediator inside an active mediation goes to both parties."""
    with ticket_session(ctx, no) as (ticket, pipe):
        if ticket.mediator != member.openid or ticket.state not in ("mediating", "proposal"):
            return None
        relay(ctx, ticket, "mediator", msg.text.strip(), pipe)
        return ""

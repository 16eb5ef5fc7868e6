"""The consumer: intake, progress lookup, talking in mediation, answering a proposal, rating.

Issue 6: the first message is triaged (flows/triage.py) the way an intake officer would read
it. Out of scope, a merchant outside the district, or a question the FAQ answers is told at
once and nothing is dispatched; otherwise the intake asks only what this kind of message
needs, and ``_open_ticket`` decides once, at confirmation: a complaint ticket, a report
ticket, both (handled separately), a consult ticket, or joining the consumer's open ticket
about the same matter with the same merchant. A route that is not confident goes to the
intake queue (the fallback unit) with its two candidates.
"""

from __future__ import annotations

import json
from typing import Any

from flows import intake
from flows.mediation import Ticket, fire
from flows.triage import Early, Plan, Triage
from handlers import followup, merchant_first, texts
from handlers import clocks as ticket_clocks
from handlers.base import Context, Incoming
from handlers.common import RATING_PROMPT, clock_text, relay, ticket_line, ticket_session, vote
from handlers.trail import audited_session

QUERY_WORDS = {"查询", "进度", "我的投诉", "查进度", "工单"}
HELP_WORDS = {"帮助", "help", "?", "？", "你好", "您好"}
AGREE_WORDS = {"同意", "同意方案", "接受"}
DECLINE_WORDS = {"不同意", "不接受", "拒绝"}
SKIP_WORDS = {"跳过", "不评价"}
RATING_WORDS = {"1", "2", "3", "4", "5"} | SKIP_WORDS
# While a ticket is open, these start a new intake instead of being passed to that ticket.
NEW_WORDS = set(intake.START_WORDS)


def list_tickets(ctx: Context, openid: str) -> str:
    tickets = ctx.store.consumer_tickets(openid)
    if not tickets:
        return texts.NO_TICKETS
    lines = [ticket_line(t, ctx.directory.unit_name(t.unit)) for t in tickets]
    return "您的工单：\n" + "\n".join(lines)


def triage_of(ctx: Context) -> Triage:
    """The triage built with the router (Router.from_config); built here once otherwise."""
    triage = getattr(ctx.router, "triage", None)
    if triage is None:
        triage = ctx.router.triage = Triage.from_config(ctx.config, ctx.router)
    return triage


def handle(ctx: Context, msg: Incoming) -> str | None:
    text = msg.text.strip()
    if msg.kind == "text" and text in QUERY_WORDS:
        return list_tickets(ctx, msg.openid)
    if msg.kind not in ("text", "image", "location"):
        return texts.UNSUPPORTED

    # Lock and read in one round trip, the same lock as tickets use: three quick answers
    # must land in three slots, in order, so the read happens only once the lock is ours.
    lock_key = ctx.store.keys.user_lock(msg.openid)
    token, user = ctx.store.lock_and_read(lock_key, ctx.store.keys.user(msg.openid))
    if token is None:
        return texts.BUSY
    try:
        if user.get("intake") and _intake_expired(ctx, user):
            ctx.store.save_user(msg.openid, {"intake": "", "intake_at": ""})
            notice = texts.INTAKE_EXPIRED.format(hours=_expire_hours(ctx))
            if msg.kind == "text" and len(text) >= 4 and text not in HELP_WORDS:
                return notice + "\n" + _start_intake(ctx, msg)
            return notice
        if user.get("intake"):
            try:
                data = json.loads(user["intake"])
            except ValueError:  # a damaged draft must not block the person forever
                data = {}
            return _continue_intake(ctx, msg, data)
        if user.get("ticket"):
            if msg.kind == "text" and text in NEW_WORDS:
                return _start_intake(ctx, msg)  # a new matter while one is open (issue 6)
            reply = _on_ticket(ctx, msg, _pick_ticket(ctx, msg, user))
            if reply is not None:
                return reply
        if msg.kind == "text" and text in HELP_WORDS:
            return texts.CONSUMER_HELP
        if msg.kind == "location":
            return _start_with_location(ctx, msg)
        if msg.kind != "text":
            return texts.TEXT_FIRST
        return _start_intake(ctx, msg)
    finally:
        ctx.store.release(lock_key, token)  # only if still ours: an expired lock is left alone


def _expire_hours(ctx: Context) -> float:
    return float(ctx.config.get("intake", {}).get("expire_hours", 24))


def _intake_expired(ctx: Context, user: dict[str, str]) -> bool:
    """An intake untouched for longer than intake.expire_hours is abandoned."""
    started = float(user.get("intake_at") or 0)
    return ctx.now() - started > _expire_hours(ctx) * 3600


def _save_draft(ctx: Context, openid: str, draft: intake.IntakeDraft) -> None:
    ctx.store.save_user(openid, {"intake": json.dumps(draft.to_dict(), ensure_ascii=False),
                                 "intake_at": str(ctx.now())})


def _start_intake(ctx: Context, msg: Incoming) -> str:
    triage = triage_of(ctx)
    draft = intake.start(msg.text, hooks=triage)
    early = triage.early(draft)
    if early is not None:
        return early_reply(ctx, early)  # told at once; no intake, nothing dispatched
    _save_draft(ctx, msg.openid, draft)
    return texts.INTAKE_OPENING.get(draft.kind, texts.INTAKE_OPENING["complaint"]) + intake.prompt(draft)


def _start_with_location(ctx: Context, msg: Incoming) -> str:
    """A location before any words: keep it as the merchant's place and ask what happened."""
    triage = triage_of(ctx)
    draft = intake.start("", hooks=triage)
    reply = intake.answer_location(draft, msg.text, hooks=triage)
    early = triage.early(draft)
    if early is not None:
        return early_reply(ctx, early)
    _save_draft(ctx, msg.openid, draft)
    return reply.text


def _continue_intake(ctx: Context, msg: Incoming, data: dict[str, Any]) -> str:
    triage = triage_of(ctx)
    draft = intake.IntakeDraft.from_dict(data)
    if msg.kind == "image":
        result = intake.answer_photo(draft, msg.media_id)
    elif msg.kind == "location":
        result = intake.answer_location(draft, msg.text, hooks=triage)
    else:
        result = intake.answer_text(draft, msg.text, hooks=triage)
    if result.cancelled:
        ctx.store.save_user(msg.openid, {"intake": "", "intake_at": ""})
        return result.text
    early = triage.early(draft)
    if early is not None:
        ctx.store.save_user(msg.openid, {"intake": "", "intake_at": ""})
        return early_reply(ctx, early)
    if result.submitted:
        return _open_ticket(ctx, msg.openid, draft)
    _save_draft(ctx, msg.openid, draft)
    return result.text


def early_reply(ctx: Context, early: Early) -> str:
    """What the consumer is told when the intake ends at once (nothing is dispatched)."""
    if early.action == "faq":
        return texts.FAQ_ANSWER.format(answer=early.answer)
    if early.action == "outside":
        return texts.OUTSIDE_DISTRICT.format(place=early.place, agency=early.agency, contact=early.contact)
    contact = f"\n{early.contact}" if early.contact else ""
    return texts.OUT_OF_SCOPE.format(agency=early.agency or "相关行政主管部门", contact=contact)


# --- the decision at confirmation --------------------------------------------------------------

def _open_ticket(ctx: Context, openid: str, draft: intake.IntakeDraft) -> str:
    """The consumer confirmed: decide once what to open (flows/triage.py) and open it."""
    triage = triage_of(ctx)
    decision = triage.decide(draft)
    if decision.early is not None:
        ctx.store.save_user(openid, {"intake": "", "intake_at": ""})
        return early_reply(ctx, decision.early)

    now = ctx.now()
    hours = float(ctx.config["tickets"]["response_hours"])
    prefix = ctx.config["tickets"]["prefix"]
    joined: list[tuple[Plan, Ticket]] = []
    new: list[tuple[Plan, Ticket]] = []
    for plan in decision.plans:
        duplicate = _find_duplicate(ctx, triage, openid, plan, draft)
        if duplicate is not None:
            _join(ctx, duplicate.no, plan, draft)
            joined.append((plan, duplicate))
            continue
        new.append((plan, Ticket(
            no=ctx.store.next_ticket_no(prefix),
            consumer=openid,
            unit=plan.unit,
            category=plan.category,
            keywords=list(plan.hits),
            facts=plan.facts,
            merchant_name=draft.merchant,
            demand=draft.demand if plan.kind == "complaint" else "",
            phone=draft.phone,
            photos=list(draft.photos),
            created_at=now,
            response_due=now + hours * 3600,
        )))
    numbers = [t.no for _, t in joined] + [t.no for _, t in new]
    user = ctx.store.load_user(openid)
    pipe = ctx.store.pipeline()
    for plan, ticket in new:
        ticket.kind = plan.kind
        ticket.candidates = [list(c) for c in plan.candidates]
        ticket.routed = plan.routed
        ticket.station = plan.station
        ticket.place = plan.place
        ticket.related = [n for n in numbers if n != ticket.no]
        merchant_first.offer_first(ctx, ticket, pipe)  # issue 5: a registered merchant settles first
        ticket_clocks.sync(ctx, ticket, pipe)  # issue 5: its deadlines are born in the same write
        ctx.store.save_ticket(ticket, pipe)
        ctx.store.add_consumer_ticket(openid, ticket.no, pipe)
        unit_name = ctx.directory.unit_name(ticket.unit)
        ctx.store.append_transcript(
            ticket.no, "system", f"工单创建（{texts.KIND_NAMES[ticket.kind]}），分派至{unit_name}", pipeline=pipe,
            event="created", kind=ticket.kind, routed=ticket.routed, keywords=list(plan.hits),
            candidates=ticket.candidates, station=ticket.station)
        audit = getattr(ctx, "audit", None)
        if audit is not None:
            audit.record(ticket.no, "consumer", "created",
                         f"{texts.KIND_NAMES[ticket.kind]} → {unit_name}（{texts.ROUTED_NAMES[ticket.routed]}）",
                         pipeline=pipe, name="举报人" if ticket.kind == "report" else "消费者")
    primary = next((t.no for p, t in new + joined if p.kind in ("complaint", "consult")), numbers[0])
    _remember(ctx, openid, user, primary, numbers, pipe)
    pipe.execute()

    for plan, ticket in new:
        if ticket.state != "self_settling":  # issue 5: the unit hears of it only if the merchant does not settle
            _notify_staff(ctx, ticket, plan)
    return _confirmation(ctx, joined, new, hours) + merchant_first.confirmation_note(ctx, [t for _, t in new])


def _remember(ctx: Context, openid: str, user: dict[str, str], primary: str, numbers: list[str], pipe: Any) -> None:
    """The consumer's plain messages go to ``primary``; the others stay reachable (``also``)."""
    others = [n for n in [*numbers, user.get("ticket", ""), *_also(user)] if n and n != primary]
    ctx.store.save_user(openid, {"ticket": primary, "also": json.dumps(list(dict.fromkeys(others))) if others else "",
                                 "intake": "", "intake_at": ""}, pipeline=pipe)


def _also(user: dict[str, str]) -> list[str]:
    try:
        return [str(n) for n in json.loads(user.get("also") or "[]")]
    except ValueError:
        return []


def _find_duplicate(ctx: Context, triage: Triage, openid: str, plan: Plan,
                    draft: intake.IntakeDraft) -> Ticket | None:
    """An open ticket of this consumer, same kind, same merchant, same matter."""
    if plan.kind == "consult":
        return None
    for ticket in ctx.store.consumer_tickets(openid, limit=20):
        if (ticket.is_open and ticket.kind == plan.kind
                and triage.same_merchant(ticket.merchant_name, draft.merchant)
                and triage.same_matter(ticket.facts, ticket.category, plan.facts, plan.category)):
            return ticket
    return None


def _join(ctx: Context, no: str, plan: Plan, draft: intake.IntakeDraft) -> None:
    """The same complaint again: it goes into the open ticket, the staff are told."""
    with ticket_session(ctx, no) as (ticket, pipe):
        ticket.repeats += 1
        for media_id in draft.photos:
            if media_id not in ticket.photos:
                ticket.photos.append(media_id)
        ctx.store.append_transcript(ticket.no, "consumer", f"（再次反映，已并入本工单）{plan.facts}",
                                    pipeline=pipe, event="duplicate_joined")
        audit = getattr(ctx, "audit", None)
        if audit is not None:
            audit.record(ticket.no, "consumer", "duplicate_joined", "同一消费者再次反映同一问题，已并入",
                         pipeline=pipe, name="消费者")
        targets = [ticket.mediator] if ticket.mediator else [m.openid for m in ctx.directory.staff_of(ticket.unit)]
        for openid in targets:
            ctx.send(openid, texts.DUPLICATE_TO_STAFF.format(no=ticket.no, facts=plan.facts[:200]),
                     kind="relay", ticket=ticket.no)


def _notify_staff(ctx: Context, ticket: Ticket, plan: Plan) -> None:
    routing = texts.routing_note(ctx.router, plan, ctx.directory.unit_name)
    head = texts.NEW_TICKET_HEAD[ticket.kind].format(no=ticket.no)
    lines = [head, routing]
    if ticket.kind != "consult":
        lines.append(f"商家：{ticket.merchant_name}" + (f"（{ticket.place}）" if ticket.place else ""))
    if ticket.kind == "complaint":
        lines.append(f"诉求：{ticket.demand}")
    lines.append(f"{'问题' if ticket.kind == 'consult' else '经过'}：{ticket.facts[:200]}")
    if ticket.related:
        lines.append(f"关联工单：{'、'.join(ticket.related)}")
    lines.append(texts.NEW_TICKET_TAIL[ticket.kind].format(no=ticket.no, due=clock_text(ticket.response_due)))
    for member in ctx.directory.staff_of(ticket.unit):
        ctx.send(member.openid, "\n".join(lines), kind="new_ticket", ticket=ticket.no)


def _confirmation(ctx: Context, joined: list[tuple[Plan, Ticket]], new: list[tuple[Plan, Ticket]],
                  hours: float) -> str:
    parts = []
    for plan, ticket in joined:
        parts.append(texts.DUPLICATE_JOINED.format(
            what=texts.KIND_NAMES[plan.kind], merchant=ticket.merchant_name, no=ticket.no,
            state=texts.STATE_NAMES.get(ticket.state, ticket.state)))
    for plan, ticket in new:
        unit_name = ctx.directory.unit_name(ticket.unit)
        template = texts.CREATED[ticket.kind] if not parts else texts.CREATED_ALSO[ticket.kind]
        parts.append(template.format(no=ticket.no, unit=unit_name, hours=int(hours),
                                     due=clock_text(ticket.response_due)))
    return "\n".join(parts) + "\n回复“查询”可随时查看进度。"


# --- an open ticket ------------------------------------------------------------------------------

def _pick_ticket(ctx: Context, msg: Incoming, user: dict[str, str]) -> str:
    """Which of the consumer's unfinished tickets this message is for. Usually the only one;
    with several (a complaint and its report, or a new matter), the one waiting for this
    person: a rating answer goes to a finished one, chat to one in mediation."""
    others = _also(user)
    if not others:
        return user["ticket"]
    numbers = [user["ticket"], *others]
    tickets = [t for t in ctx.store.load_tickets(numbers)
               if t is not None and t.consumer == msg.openid and t.state != "closed"]
    if not tickets:
        return user["ticket"]  # _on_ticket clears the pointer
    alive = [t.no for t in tickets]
    if alive != numbers:
        ctx.store.save_user(msg.openid, {"ticket": alive[0],
                                         "also": json.dumps(alive[1:]) if alive[1:] else ""})
    text = msg.text.strip()
    if msg.kind == "text" and text in RATING_WORDS:
        finished = [t.no for t in tickets if t.state in ("settled", "terminated")]
        if finished:
            return finished[0]
    talking = [t.no for t in tickets if t.state in ("mediating", "proposal")]
    return talking[0] if talking else alive[0]


def _on_ticket(ctx: Context, msg: Incoming, no: str) -> str | None:
    """The consumer has an active ticket; what their message means depends on its state.
    None means the ticket is finished and the message starts something new."""
    text = msg.text.strip() if msg.kind != "location" else f"[位置] {msg.text.strip()}"
    # Audited: the consumer's own 同意 or rating changes the ticket's state.
    with audited_session(ctx, no, "consumer", "消费者") as (ticket, pipe):
        if ticket.consumer != msg.openid or ticket.state == "closed":
            user = ctx.store.load_user(msg.openid)
            rest = [n for n in _also(user) if n != no]
            ctx.store.save_user(msg.openid, {"ticket": rest[0] if rest else "",
                                             "also": json.dumps(rest[1:]) if rest[1:] else ""}, pipeline=pipe)
            return None
        if msg.kind == "image":
            ticket.photos.append(msg.media_id)
            relay(ctx, ticket, "consumer", "[发送了一张图片，已存入工单证据]", pipe)
            return "图片已作为证据存入工单。"
        if ticket.state in ("settled", "terminated"):
            return _rate(ctx, ticket, text, pipe)
        if ticket.state == "self_settling":  # issue 5: talking with the merchant who settles first
            return merchant_first.consumer_says(ctx, ticket, text, pipe)
        if ticket.state == "proposal" and text in AGREE_WORDS | DECLINE_WORDS:
            return vote(ctx, ticket, "consumer", text in AGREE_WORDS, pipe)
        if ticket.state in ("mediating", "proposal"):
            relay(ctx, ticket, "consumer", text, pipe)
            return ""  # relayed like a group chat: no echo to the sender
        # submitted / accepted: nobody to talk to yet except the unit's staff.
        ctx.store.append_transcript(ticket.no, "consumer", text, pipeline=pipe)
        targets = [ticket.mediator] if ticket.mediator else [m.openid for m in ctx.directory.staff_of(ticket.unit)]
        for openid in targets:
            ctx.send(openid, f"【消费者补充 {ticket.no}】{text}", kind="relay", ticket=ticket.no)
        return texts.SUPPLEMENT_FORWARDED.format(no=ticket.no)


def _rate(ctx: Context, ticket: Ticket, text: str, pipe: Any) -> str:
    if followup.is_unhappy(text, followup.rating_in(text)):  # issue 5: 回访 reopens for the mobile team
        return followup.reopen_unsatisfied(ctx, ticket, text, followup.rating_in(text), pipe)
    if text in SKIP_WORDS:
        rating = 0
    elif text in {"1", "2", "3", "4", "5"}:
        rating = int(text)
    else:
        return f"工单 {ticket.no} 已结束。{RATING_PROMPT}"
    fire(ticket, "rate", rating=rating, at=ctx.now())
    ctx.store.append_transcript(ticket.no, "consumer", f"评价：{rating or '未评价'}", pipeline=pipe, event="rated")
    user = ctx.store.load_user(ticket.consumer)
    rest = [n for n in [user.get("ticket", ""), *_also(user)] if n and n != ticket.no]
    ctx.store.save_user(ticket.consumer, {"ticket": rest[0] if rest else "",
                                          "also": json.dumps(rest[1:]) if rest[1:] else ""}, pipeline=pipe)
    return f"感谢您的评价，工单 {ticket.no} 已办结。" if rating else f"工单 {ticket.no} 已办结。"

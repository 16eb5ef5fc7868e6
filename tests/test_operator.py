"""Operator commands over the real webhook: every command for a role that may run it and one
that may not, the views, re-routing, escalation, reopening, and bad input as Chinese answers."""

from __future__ import annotations

import re

import pytest

from flows.mediation import TERMINATION_REASONS, Ticket
from flows.roles import ROLES
from handlers import operator
from handlers.base import COMMANDS, Context
from tests.conftest import CONSUMER, MERCHANT

PEOPLE = {  # key → (openid, name, unit, role)
    "intake": ("oBoundIntake", "张受理", "consumer_rights", "intake"),
    "food": ("oBoundFood", "李食品", "food_business", "unit"),
    "quality": ("oBoundQuality", "王质量", "product_quality", "unit"),
    "mobile": ("oBoundMobile", "孙机动", "", "mobile"),
    "leader": ("oBoundLeader", "赵局长", "", "leader"),
    "admin": ("oBoundAdmin", "钱管理", "consumer_rights", "admin"),
}


@pytest.fixture
def people(bind_staff):
    return {key: bind_staff(*spec) for key, spec in PEOPLE.items()}


def say(wechat, who, text: str) -> str:
    """``who``: a staff key of PEOPLE or an openid."""
    reply = wechat.text(PEOPLE[who][0] if who in PEOPLE else who, text)
    assert reply.status == 200
    return reply.content


def new_ticket(services, unit: str = "food_business", consumer: str = CONSUMER, due_in: float = 86400,
               facts: str = "在华联超市买的牛奶过期了，喝了肚子疼，要求退款") -> str:
    """A submitted ticket as intake leaves it (intake itself is tested in test_main_path)."""
    now = services.clock()
    no = services.store.next_ticket_no("LZ")
    services.store.save_ticket(Ticket(no=no, consumer=consumer, unit=unit, category="food_safety", keywords=["过期"],
                                      facts=facts, merchant_name="华联超市", demand="退款", phone="13800001234",
                                      created_at=now, response_due=now + due_in))
    services.store.add_consumer_ticket(consumer, no)
    services.store.save_user(consumer, {"ticket": no})
    return no


def ticket_in(state: str, wechat, services) -> str:
    """Drive a fresh food ticket to ``state`` with real commands and messages."""
    no = new_ticket(services)
    if state == "submitted":
        return no
    assert "已受理" in say(wechat, "food", f"/take {no}")
    if state == "accepted":
        return no
    if state in ("terminated", "closed"):
        assert "已终止" in say(wechat, "food", f"/close {no} 2")
        if state == "closed":
            assert "办结" in say(wechat, CONSUMER, "3")  # 1–2 would reopen it (回访, issue 5)
        return no
    code = re.search(r"邀请码：(\d{6})", say(wechat, "food", f"/invite {no}")).group(1)
    assert "已加入" in say(wechat, MERCHANT, code)
    if state == "proposal":
        assert "发给双方" in say(wechat, "food", f"/propose {no} 退款25元")
    return no


def queued(services) -> int:
    return services.outbound.queue.count


def snapshot(services, no: str) -> dict:
    return services.redis.data.hgetall(services.keys.ticket(no))


# --- every command: allowed for one role, refused for another -------------------------------------

CASES = [  # command, state, line, allowed, expected answer, refused (a staff key or a consumer)
    ("help", "submitted", "/help", "leader", "可用命令", CONSUMER),
    ("list", "submitted", "/list", "food", "本单位工单", CONSUMER),
    ("show", "submitted", "/show {no}", "leader", "华联超市", CONSUMER),
    ("stats", "submitted", "/stats", "food", "统计", CONSUMER),
    ("note", "submitted", "/note {no} 已电话联系商家", "leader", "内部备注", CONSUMER),
    ("take", "submitted", "/take {no}", "food", "已受理", "leader"),
    ("invite", "accepted", "/invite {no}", "food", "邀请码", "leader"),
    ("join", "accepted", "/join {no}", "intake", "已进入", "leader"),
    ("leave", "accepted", "/leave", "food", "已离开", "leader"),
    ("propose", "mediating", "/propose {no} 退款25元", "food", "发给双方", "leader"),
    ("close", "accepted", "/close {no} 2", "food", "已终止", "leader"),
    ("remind", "mediating", "/remind {no}", "food", "已提醒", "leader"),
    ("reply", "submitted", "/reply {no} 已收到，今天联系商家", "food", "已答复消费者", "leader"),
    ("return", "submitted", "/return {no} 不属于食品经营", "food", "退回", "intake"),
    ("transfer", "submitted", "/transfer {no} product_quality", "intake", "转办至产品质量安全监督科", "food"),
    ("escalate", "submitted", "/escalate {no} 小分队 商家拒不配合", "food", "上报机动维权小分队", "mobile"),
    ("reopen", "terminated", "/reopen {no} 消费者反映商家未退款", "intake", "已重新开启", "food"),
]


def test_the_table_covers_every_command():
    assert {case[0] for case in CASES} == {c.name for c in COMMANDS.values()}


def test_every_command_declares_roles_help_and_a_unique_alias():
    commands = {c.name: c for c in COMMANDS.values()}
    for command in commands.values():
        assert command.roles and set(command.roles) <= set(ROLES), command.name
        assert command.help and command.alias and command.alias not in commands
    assert len({c.alias for c in commands.values()}) == len(commands)
    with pytest.raises(ValueError):
        operator.operator_command("oops", alias="哎", args="", roles=("staff",), help="x")


@pytest.mark.parametrize("name,state,line,allowed,expected,refused", CASES, ids=[c[0] for c in CASES])
def test_command_allowed_and_refused(wechat, services, people, name, state, line, allowed, expected, refused):
    no = ticket_in(state, wechat, services)
    line = line.format(no=no)
    before, jobs, trail = snapshot(services, no), queued(services), len(services.audit.recent(1000))
    user_before = services.store.load_user(refused if refused not in PEOPLE else PEOPLE[refused][0])

    answer = say(wechat, refused, line)
    if refused in PEOPLE:
        assert "权限" in answer and f"/{name}" in answer
        entry = services.audit.recent(1)[0]
        assert (entry["actor"], entry["action"], entry["result"]) == (people[refused].id, name, "refused")
    else:
        # A consumer typing a slash command: a plain answer, and nothing else happens.
        assert answer == operator.NOT_STAFF
        assert len(services.audit.recent(1000)) == trail
        assert services.store.load_user(refused) == user_before
    assert snapshot(services, no) == before
    assert queued(services) == jobs

    assert expected in say(wechat, allowed, line)
    entry = services.audit.recent(1)[0]
    assert (entry["actor"], entry["action"], entry["result"]) == (people[allowed].id, name, "ok")


# --- help, usage, bad input --------------------------------------------------------------------------

def test_help_lists_only_what_the_caller_may_run(wechat, people):
    leader = say(wechat, "leader", "/help")
    assert "/stats" in leader and "/reopen" in leader and "/take" not in leader and "/transfer" not in leader
    food = say(wechat, "food", "/帮助")
    assert "/take" in food and "/return" in food and "/transfer" not in food and "/reopen" not in food
    assert "李食品｜食品经营安全监管科｜承办人员" in food


@pytest.mark.parametrize("line,expected", [
    ("/take", "用法：/take <no>"),
    ("/transfer 20261203-1", "用法：/transfer <no> <unit>"),
    ("/take abc", "工单号应形如"),
    ("/list 全部", "没有“全部”这个列表"),
    ("/close {no} 9", "终止原因请填编号"),
    ("/close {no} settled", "请写明双方达成的协议内容"),
    ("/escalate {no} 科长 很急", "请填 小分队 或 会商"),
    ("/transfer {no} 火星所", "没有单位“火星所”"),
    ("/fly {no}", "没有 /fly 这个命令"),
    ("／受理", "用法：/take <no>"),
    ("/take LZ-20000101-0001", "找不到工单 LZ-20000101-0001"),
    ("/take " + "9" * 3000, "工单号应形如"),
])
def test_bad_arguments_get_a_usage_line_not_a_stack_trace(wechat, services, people, line, expected):
    no = new_ticket(services)
    who = "intake" if line.startswith(("/transfer", "/escalate")) else "food"
    answer = say(wechat, who, line.format(no=no))
    assert expected in answer
    assert services.store.load_ticket(no).state == "submitted"


def test_ticket_numbers_and_aliases_may_be_typed_short(wechat, services, people):
    no = new_ticket(services)
    short = no.removeprefix("LZ-")
    short = short[:9] + str(int(short[9:]))  # 20261203-1
    assert "已受理" in say(wechat, "food", f"／受理　{short}")  # full-width slash and space
    assert services.store.load_ticket(no).state == "accepted"


def test_staff_plain_text_outside_a_mediation_is_not_a_complaint(wechat, services, people):
    answer = say(wechat, "food", "今天的工单多吗")
    assert "不在任何调解中" in answer and "/help" in answer
    assert not services.store.load_user(PEOPLE["food"][0]).get("intake")


def test_a_merchant_typing_a_slash_command_is_not_relayed(wechat, services, people):
    no = ticket_in("mediating", wechat, services)
    jobs = queued(services)
    assert say(wechat, MERCHANT, f"/close {no} 1") == operator.NOT_STAFF
    assert queued(services) == jobs
    assert not any(e["role"] == "merchant" for e in services.store.transcript(no))
    assert services.store.load_ticket(no).state == "mediating"


# --- views and visibility ------------------------------------------------------------------------

def test_views_follow_roles(wechat, services, people):
    food, late, quality, intake_q = (new_ticket(services), new_ticket(services, due_in=-60),
                                     new_ticket(services, unit="product_quality"),
                                     new_ticket(services, unit="consumer_rights"))
    ctx = Context(store=services.store, router=services.router, directory=services.directory, config=services.config)

    def view(who, name):
        return [t.no for t in operator.visible_tickets(ctx, people[who], name)]

    assert set(view("food", "unit")) == {food, late}
    assert set(view("leader", "unit")) == {food, late, quality, intake_q}
    assert view("food", "overdue") == [late]
    assert view("intake", "intake") == [intake_q]
    assert view("food", "intake") == []
    assert view("mobile", "unit") == []
    say(wechat, "food", f"/take {food}")
    assert view("food", "mine") == [food]
    assert view("intake", "mine") == []
    ticket = services.store.load_ticket(quality)
    assert operator.can_see(ctx, people["quality"], ticket) and not operator.can_see(ctx, people["food"], ticket)
    assert "不在您（承办人员）的处理范围内" in say(wechat, "food", f"/show {quality}")
    assert "【超期】" in say(wechat, "food", "/list overdue")
    assert intake_q in say(wechat, "intake", "/list")  # intake's default list is the intake queue
    assert "没有我受理的工单" in say(wechat, "quality", "/list 我的")


def test_show_masks_the_phone_and_gives_the_timeline(wechat, services, people):
    no = new_ticket(services, facts="华联超市卖过期牛奶，我的电话13912345678，身份证370303199001011234")
    say(wechat, "food", f"/take {no}")
    say(wechat, "food", f"/note {no} 已电话联系商家")
    answer = say(wechat, "leader", f"/show {no}")
    assert "138****1234" in answer and "13800001234" not in answer
    assert "139****5678" in answer and "370303********1234" in answer
    assert "时间线" in answer and "李食品 受理" in answer and "李食品 备注 已电话联系商家" in answer


def test_execute_without_a_binding_or_slash_is_the_dashboard_path(services, people):
    """A staff member who never bound WeChat works from the dashboard through the same execute."""
    record, _code = services.staff.add("周工作台", "food_business", "unit")
    no = new_ticket(services)
    ctx = Context(store=services.store, router=services.router, directory=services.directory, config=services.config)
    assert "已受理" in operator.execute(ctx, record, f"take {no}")
    ticket = services.store.load_ticket(no)
    assert ticket.mediator_id == record.id and ticket.mediator == ""
    assert [t.no for t in operator.visible_tickets(ctx, record, "mine")] == [no]
    assert len(ctx.outbox) == 1 and ctx.outbox[0].to == CONSUMER
    assert "绑定" in operator.execute(ctx, record, f"join {no}")


# --- re-routing, escalation, reopening ------------------------------------------------------------

def test_transfer_moves_the_ticket_and_tells_the_new_unit_and_the_consumer(wechat, services, people, deliver):
    no = ticket_in("accepted", wechat, services)
    code = services.store.load_ticket(no).invite_code
    assert "转办至产品质量安全监督科" in say(wechat, "intake", f"/转办 {no} 产品质量")
    ticket = services.store.load_ticket(no)
    assert (ticket.state, ticket.unit, ticket.transferred_from, ticket.mediator) == (
        "submitted", "product_quality", "food_business", "")
    assert not services.store.load_user(PEOPLE["food"][0]).get("mediating")  # the old mediator left the room
    assert code == "" or services.store.resolve_invite(code) is None
    sent = deliver()
    assert any(to == PEOPLE["quality"][0] and f"/take {no}" in text for to, text in sent)
    assert any(to == CONSUMER and "产品质量安全监督科" in text for to, text in sent)
    assert "不在您" in say(wechat, "food", f"/take {no}")
    assert "已受理" in say(wechat, "quality", f"/take {no}")
    assert "已在产品质量安全监督科" in say(wechat, "intake", f"/transfer {no} product_quality")


def test_return_goes_back_to_intake_with_the_reason(wechat, services, people, deliver):
    no = ticket_in("accepted", wechat, services)
    assert "退回" in say(wechat, "food", f"/退单 {no} 属于价格欺诈，应由价监科处理")
    ticket = services.store.load_ticket(no)
    assert (ticket.state, ticket.unit, ticket.returned_reason) == ("submitted", "consumer_rights",
                                                                  "属于价格欺诈，应由价监科处理")
    assert no in say(wechat, "intake", "/list intake")
    sent = deliver()
    assert any(to == PEOPLE["intake"][0] and "属于价格欺诈" in text and "/transfer" in text for to, text in sent)
    # Once the merchant joined, the ticket stays where it is.
    joined = ticket_in("mediating", wechat, services)
    assert "商家加入调解后不能再退单" in say(wechat, "food", f"/return {joined} 不归我们管")


def test_escalation_reaches_the_mobile_team_who_can_then_work_it(wechat, services, people, deliver):
    no = new_ticket(services)
    assert "不在您" in say(wechat, "mobile", f"/show {no}")
    assert "已通知 1 人" in say(wechat, "food", f"/escalate {no} 小分队 商家拒不配合")
    ticket = services.store.load_ticket(no)
    assert (ticket.escalated, ticket.escalation_reason, ticket.state) == ("mobile", "商家拒不配合", "submitted")
    assert any(to == PEOPLE["mobile"][0] and "商家拒不配合" in text for to, text in deliver())
    assert "机动维权小分队：商家拒不配合" in say(wechat, "mobile", f"/show {no}")
    assert no in say(wechat, "mobile", "/list")
    assert "已受理" in say(wechat, "mobile", f"/take {no}")
    assert "已通知 2 人" in say(wechat, "intake", f"/escalate {no} 会商 涉及两个科室")  # leader and mobile


def test_an_unsatisfied_consumer_is_seen_by_the_mobile_team_who_reopens(wechat, services, people, deliver):
    no = ticket_in("closed", wechat, services)
    # A rating of 3 closes; the mobile team does not see a satisfied enough case ...
    assert no not in say(wechat, "mobile", "/list")
    # ... until an unhappy word later (here: staff set the rating to 2 by hand, as older data has it).
    services.redis.data.hset(services.keys.ticket(no), "rating", "2")
    assert no in say(wechat, "mobile", "/list")
    assert "已重新开启" in say(wechat, "mobile", f"/reopen {no} 消费者不满意，重新调解")
    ticket = services.store.load_ticket(no)
    assert (ticket.state, ticket.reopened, ticket.merchant, ticket.closed_at) == ("accepted", 1, "", 0.0)
    assert any(to == CONSUMER and "重新开启" in text for to, text in deliver())
    # The consumer's next words reach the reopened ticket, not a new complaint.
    assert no in say(wechat, CONSUMER, "商家到现在还没退款")
    assert "已进入" in say(wechat, "mobile", f"/join {no}")
    assert "只有已结束的工单才能重新开启" in say(wechat, "intake", f"/reopen {no} 再开一次")


def test_close_with_settled_records_an_agreement_reached_by_phone(wechat, services, people, deliver):
    no = ticket_in("accepted", wechat, services)
    assert "调解成功" in say(wechat, "food", f"/close {no} settled 商家已电话同意退款25元")
    ticket = services.store.load_ticket(no)
    assert ticket.state == "settled" and ticket.proposal == "商家已电话同意退款25元"
    assert services.store.settlement(no)["terms"] == "商家已电话同意退款25元"
    assert any(to == CONSUMER and "打分" in text for to, text in deliver())


def test_close_takes_a_statutory_reason_and_an_optional_explanation(wechat, services, people):
    no = ticket_in("accepted", wechat, services)
    assert "已终止" in say(wechat, "food", f"/close {no} 8 商家已注销")
    assert services.store.load_ticket(no).terminated_reason == f"{TERMINATION_REASONS['8']}（商家已注销）"


def test_a_report_or_consult_ticket_closes_with_its_result_in_words(wechat, services, people):
    if "kind" not in Ticket.__dataclass_fields__:
        pytest.skip("ticket kinds (举报/咨询) come with issue 6")
    no = new_ticket(services)
    ticket = services.store.load_ticket(no)
    ticket.kind = "report"
    services.store.save_ticket(ticket)
    say(wechat, "food", f"/take {no}")
    assert "已办结" in say(wechat, "food", f"/close {no} 已现场核查，责令整改")
    assert services.store.load_ticket(no).terminated_reason == "已现场核查，责令整改"


def test_join_takes_over_the_room_and_leave_stops_relaying(wechat, services, people, deliver):
    no = ticket_in("mediating", wechat, services)
    deliver()
    assert "已进入" in say(wechat, "intake", f"/join {no}")
    ticket = services.store.load_ticket(no)
    assert ticket.mediator == PEOPLE["intake"][0] and ticket.mediator_id == people["intake"].id
    assert say(wechat, "intake", "请商家今天给出答复") == ""
    sent = deliver()
    assert (MERCHANT, "【调解员】请商家今天给出答复") in sent
    assert any(to == PEOPLE["food"][0] and "张受理接手" in text for to, text in sent)
    assert "不在任何调解中" in say(wechat, "food", "我还在吗")  # the old mediator left the room
    assert "已离开" in say(wechat, "intake", "/leave")
    assert "不在任何调解中" in say(wechat, "intake", "这句不该转出去")
    assert "您当前不在任何调解中" in say(wechat, "intake", "/leave")


def test_remind_nudges_only_who_has_not_answered(wechat, services, people, deliver):
    no = ticket_in("proposal", wechat, services)
    say(wechat, CONSUMER, "同意")
    deliver()
    assert "已提醒商家" in say(wechat, "food", f"/催办 {no}")
    sent = [(to, text) for to, text in deliver() if "提醒" in text]
    assert [to for to, _ in sent] == [MERCHANT]
    assert "商家尚未加入调解" in say(wechat, "food", f"/remind {ticket_in('accepted', wechat, services)}")


def test_a_note_is_never_relayed(wechat, services, people, deliver):
    no = ticket_in("mediating", wechat, services)
    deliver()
    say(wechat, "food", f"/note {no} 商家态度恶劣，考虑移交执法")
    assert not [text for _, text in deliver() if "态度恶劣" in text]
    assert not any("态度恶劣" in e["text"] for e in services.store.transcript(no))
    assert any(e["action"] == "note" and "态度恶劣" in e["detail"] for e in services.audit.timeline(no))


def test_stats_count_today_and_this_week_for_the_unit(wechat, services, people):
    settled = ticket_in("accepted", wechat, services)
    say(wechat, "food", f"/close {settled} settled 退款25元")
    ticket_in("terminated", wechat, services)
    new_ticket(services, unit="product_quality")
    food = say(wechat, "food", "/stats")
    assert "统计（食品经营安全监管科）" in food
    assert "今日：新收 2｜受理 2｜调解成功 1｜终止 1" in food and "成功率 50%" in food
    leader = say(wechat, "leader", "/统计")
    assert "统计（全局）" in leader and "今日：新收 3" in leader and "产品质量安全监督科 1" in leader

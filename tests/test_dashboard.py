"""The staff dashboard through Flask's test client: real Redis, real staff store, real operator commands."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from bot.app import build_services, create_app
from bot.dashboard import ACTIONS
from flows.mediation import TERMINATION_REASONS, Ticket
from handlers.base import COMMANDS
from storage.keys import Keys
from tests.conftest import REPO

NO = NO_LATE = "LZ-20261203-0001"  # food_business, overdue in the `tickets` fixture
NO_FOOD = "LZ-20261203-0002"  # food_business, due tomorrow
NO_QUAL = "LZ-20261203-0003"  # product_quality
PHONE = "13812345678"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- helpers --------------------------------------------------------------------------------------

def make_ticket(services, no: str, unit: str = "food_business", due_in: float = 3600, **fields) -> Ticket:
    now = services.clock()
    values = dict(no=no, consumer="oConsumer0001", unit=unit, category="food_safety", keywords=["过期", "牛奶"],
                  facts="在好又多超市买的牛奶过期了，要求退款", merchant_name="好又多超市", demand="退款", phone=PHONE,
                  created_at=now - 600, response_due=now + due_in)
    values.update(fields)
    ticket = Ticket(**values)
    services.store.save_ticket(ticket)
    services.store.append_transcript(no, "system", "工单创建，分派至食品经营安全监管科", event="created")
    return ticket


def token(client, path: str = "/staff/login") -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client, services, record) -> None:
    code = services.staff.issue_login_code(record.id)
    response = client.post("/staff/login", data={"name": record.name, "secret": code, "csrf_token": token(client)})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/staff/tickets")


def act(client, no: str, action: str, **fields):
    data = {"action": action, "csrf_token": token(client, f"/staff/tickets/{no}"), **fields}
    return client.post(f"/staff/tickets/{no}/actions", data=data)


def flash_text(client, no: str) -> str:
    page = client.get(f"/staff/tickets/{no}").get_data(as_text=True)
    match = re.search(r'<div class="flash" role="status">(.*?)</div>', page, re.S)
    return match.group(1) if match else ""


@pytest.fixture
def people(services):
    """One staff member per role; the food unit's handler is the one who works NO."""
    made = {}
    for key, name, unit, role in [
        ("food", "李食品", "food_business", "unit"),
        ("quality", "王质量", "product_quality", "unit"),
        ("intake", "张受理", "consumer_rights", "intake"),
        ("leader", "赵局长", "consumer_rights", "leader"),
        ("mobile", "孙执法", "food_business", "mobile"),
        ("admin", "钱管理", "consumer_rights", "admin"),
    ]:
        record, _binding = services.staff.add(name, unit, role)
        made[key] = record
    return made


@pytest.fixture
def tickets(services):
    return [make_ticket(services, NO_LATE, due_in=-3600),
            make_ticket(services, NO_FOOD, due_in=86400),
            make_ticket(services, NO_QUAL, unit="product_quality", category="product_quality",
                        facts="新买的冰箱不制冷", merchant_name="国美电器", keywords=["冰箱"])]


@pytest.fixture
def client(app):
    return app.test_client()


# --- login ----------------------------------------------------------------------------------------

def test_pages_redirect_to_login_until_logged_in(client):
    response = client.get("/staff/tickets?view=unit")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/tickets?view%3Dunit"
    assert client.get(f"/staff/tickets/{NO}").status_code == 302
    assert client.get("/staff/").status_code == 302
    page = client.get("/staff/login").get_data(as_text=True)
    assert "工作人员登录" in page and "一次性登录码或密码" in page


def test_login_with_a_one_time_code_then_logout(client, services, people):
    login(client, services, people["food"])
    page = client.get("/staff/tickets").get_data(as_text=True)
    assert "李食品" in page and "食品经营安全监管科" in page
    response = client.post("/staff/logout", data={"csrf_token": token(client, "/staff/tickets")})
    assert response.status_code == 302
    assert client.get("/staff/tickets").status_code == 302


def test_login_goes_back_to_the_page_asked_for(client, services, people, tickets):
    client.get(f"/staff/tickets/{NO}")
    code = services.staff.issue_login_code(people["food"].id)
    response = client.post("/staff/login", data={"name": "李食品", "secret": code, "next": f"/staff/tickets/{NO}",
                                                 "csrf_token": token(client)})
    assert response.headers["Location"] == f"/staff/tickets/{NO}"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/wechat", "/staff\\..\\x"])
def test_login_never_redirects_off_the_dashboard(client, services, people, target):
    code = services.staff.issue_login_code(people["food"].id)
    response = client.post("/staff/login", data={"name": "李食品", "secret": code, "next": target,
                                                 "csrf_token": token(client)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/tickets"


def test_login_with_a_code_printed_by_the_cli(client, services, people, redis_handle, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"redis": {"url": redis_handle.url, "namespace": services.keys.ns},
                                      "data_dir": str(tmp_path)}), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "staff", "login-code", "李食品", "--config", str(config)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    code = re.search(r"login code for 李食品: (\d{6})", result.stdout).group(1)
    response = client.post("/staff/login", data={"name": "李食品", "secret": code, "csrf_token": token(client)})
    assert response.status_code == 302 and "李食品" in client.get("/staff/tickets").get_data(as_text=True)


def test_login_with_a_password(client, services, people):
    services.staff.set_password(people["leader"].id, "临淄-调解-2026")
    response = client.post("/staff/login", data={"name": "赵局长", "secret": "临淄-调解-2026",
                                                 "csrf_token": token(client)})
    assert response.status_code == 302
    assert "赵局长" in client.get("/staff/tickets").get_data(as_text=True)


def test_wrong_code_and_unknown_name_are_refused(client, services, people):
    services.staff.issue_login_code(people["food"].id)
    for name, secret in [("李食品", "000000"), ("无此人", "123456")]:
        response = client.post("/staff/login", data={"name": name, "secret": secret, "csrf_token": token(client)})
        assert response.status_code == 401
        assert "姓名或登录码/密码不正确" in response.get_data(as_text=True)
    assert client.get("/staff/tickets").status_code == 302


def test_a_login_code_works_once(client, services, people, app):
    code = services.staff.issue_login_code(people["food"].id)
    first = client.post("/staff/login", data={"name": "李食品", "secret": code, "csrf_token": token(client)})
    assert first.status_code == 302
    other = app.test_client()
    again = other.post("/staff/login", data={"name": "李食品", "secret": code, "csrf_token": token(other)})
    assert again.status_code == 401


def test_failed_logins_lock_the_name_out_without_burning_a_real_code(client, services, people, redis_data):
    limit = 5  # config.example.yaml dashboard.login_attempts
    for _ in range(limit):
        client.post("/staff/login", data={"name": "李食品", "secret": "999999", "csrf_token": token(client)})
    code = services.staff.issue_login_code(people["food"].id)
    locked = client.post("/staff/login", data={"name": "李食品", "secret": code, "csrf_token": token(client)})
    assert locked.status_code == 429
    assert "登录失败次数过多" in locked.get_data(as_text=True)
    key = services.keys.login_failures("李食品")
    assert 0 < redis_data.ttl(key) <= 15 * 60  # the lockout ends by itself
    # Another name is not affected, and once the window has passed the same code still works.
    assert client.post("/staff/login", data={"name": "王质量", "secret": "1", "csrf_token": token(client)}
                       ).status_code == 401
    redis_data.delete(key)
    assert client.post("/staff/login", data={"name": "李食品", "secret": code, "csrf_token": token(client)}
                       ).status_code == 302
    assert not redis_data.exists(key)  # a successful login clears the count


def test_logout_ends_the_session_on_the_server(client, services, people):
    login(client, services, people["food"])
    stolen = client.get_cookie("staff_session", path="/staff").value
    client.post("/staff/logout", data={"csrf_token": token(client, "/staff/tickets")})
    client.set_cookie("staff_session", stolen, path="/staff")
    assert client.get("/staff/tickets").status_code == 302


def test_session_key_is_made_once_and_shared_by_every_worker(services, people, redis_data):
    assert services.config["dashboard"]["secret_key"] == ""
    first, second = create_app(services=services), create_app(services=services)
    browser = first.test_client()
    login(browser, services, people["food"])
    assert redis_data.get(services.keys.dashboard_secret())
    other = second.test_client()
    other.set_cookie("staff_session", browser.get_cookie("staff_session", path="/staff").value, path="/staff")
    assert other.get("/staff/tickets").status_code == 200


def test_configured_secret_key_is_used(config, redis_handle, redis_data, router):
    config["dashboard"]["secret_key"] = "k" * 64
    app = create_app(services=build_services(config, redis_handle=redis_handle, router=router))
    assert app.secret_key == "k" * 64
    assert not redis_data.exists(Keys(config["redis"]["namespace"]).dashboard_secret())


# --- CSRF ---------------------------------------------------------------------------------------

def test_posts_without_the_session_token_are_refused(client, services, people, tickets):
    code = services.staff.issue_login_code(people["food"].id)
    assert client.post("/staff/login", data={"name": "李食品", "secret": code}).status_code == 400
    assert client.post("/staff/login", data={"name": "李食品", "secret": code, "csrf_token": "令牌"}).status_code == 400
    login(client, services, people["food"])  # the refused posts did not use up anything
    for forged in ["", "x" * 43, "令牌"]:
        response = client.post(f"/staff/tickets/{NO}/actions", data={"action": "take", "csrf_token": forged})
        assert response.status_code == 400
        assert "页面已过期或来源不明" in response.get_data(as_text=True)
    assert services.store.load_ticket(NO).state == "submitted"
    assert client.post("/staff/logout").status_code == 400


def test_the_token_changes_at_login(client, services, people):
    before = token(client)
    login(client, services, people["food"])
    assert token(client, "/staff/tickets") != before


# --- the list -----------------------------------------------------------------------------------

def numbers(page: str) -> list[str]:
    return re.findall(r">(LZ-\d{8}-\d{4})</a>", page)


def test_list_shows_columns_and_marks_overdue_red(client, services, people, tickets):
    login(client, services, people["food"])
    page = client.get("/staff/tickets?view=unit").get_data(as_text=True)
    assert numbers(page) == [NO_LATE, NO_FOOD]  # by deadline; the other unit's ticket is not listed
    late, on_time = (re.search(r"<tr[^>]*>\s*<td><a [^>]*>%s</a>.*?</tr>" % no, page, re.S).group(0)
                     for no in (NO_LATE, NO_FOOD))
    for text in ["待受理", "食品经营安全监管科", "食品安全", "好又多超市"]:
        assert text in late
    assert late.startswith('<tr class="overdue">') and "已超期" in late
    assert on_time.startswith("<tr>") and "已超期" not in on_time


def test_filters_by_overdue_state_and_unit(client, services, people, tickets):
    login(client, services, people["leader"])
    everything = numbers(client.get("/staff/tickets?view=unit").get_data(as_text=True))
    assert set(everything) >= {NO_LATE, NO_FOOD, NO_QUAL}
    assert numbers(client.get("/staff/tickets?view=unit&overdue=1").get_data(as_text=True)) == [NO_LATE]
    assert numbers(client.get("/staff/tickets?view=unit&unit=product_quality").get_data(as_text=True)) == [NO_QUAL]
    assert numbers(client.get("/staff/tickets?view=unit&state=mediating").get_data(as_text=True)) == []
    assert set(numbers(client.get("/staff/tickets?view=unit&state=submitted").get_data(as_text=True))) == {
        NO_LATE, NO_FOOD, NO_QUAL}
    page = client.get("/staff/tickets?view=unit&unit=food_business&overdue=1").get_data(as_text=True)
    assert numbers(page) == [NO_LATE]
    assert 'value="food_business" selected' in page and 'name="overdue" value="1" checked' in page


def test_views_mine_and_overdue(client, services, people, tickets):
    login(client, services, people["food"])
    assert numbers(client.get("/staff/tickets?view=mine").get_data(as_text=True)) == []
    act(client, NO_FOOD, "take")
    assert numbers(client.get("/staff/tickets?view=mine").get_data(as_text=True)) == [NO_FOOD]
    assert NO_LATE in numbers(client.get("/staff/tickets?view=overdue").get_data(as_text=True))


def test_find_a_ticket_by_number(client, services, people, tickets):
    make_ticket(services, "LZ-20261130-0007", state="closed")  # finished: in no work list
    login(client, services, people["food"])
    response = client.get("/staff/find?no=20261130-7")
    assert response.status_code == 302 and response.headers["Location"] == "/staff/tickets/LZ-20261130-0007"
    assert "已办结" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert client.get("/staff/find?no=hello").status_code == 400
    assert client.get("/staff/find").status_code == 400


@pytest.mark.parametrize("query", ["view=all", "unit=nowhere", "state=open", "overdue=yes", "unit=%00", "view=%FF"])
def test_bad_filters_are_400(client, services, people, query):
    login(client, services, people["food"])
    assert client.get(f"/staff/tickets?{query}").status_code == 400


# --- one ticket ---------------------------------------------------------------------------------

def test_ticket_page_shows_facts_routing_transcript_and_timeline(client, services, people, tickets):
    services.store.append_transcript(NO, "consumer", "牛奶已经过期三天了")
    services.store.append_transcript(NO, "merchant", "我们可以退款")
    login(client, services, people["food"])
    act(client, NO, "take")
    page = client.get(f"/staff/tickets/{NO}").get_data(as_text=True)
    for text in ["好又多超市", "退款", "在好又多超市买的牛奶过期了", "食品经营安全监管科", "食品安全",
                 "过期", "牛奶", "候选类别", "【消费者】", "牛奶已经过期三天了", "【商家】", "我们可以退款",
                 "【系统】", "已受理", "处理时间线", "李食品", "没有证据材料", "待受理 → 已受理，待商家加入"]:
        assert text in page, text
    timeline = services.audit.timeline(NO)
    assert timeline and timeline[-1]["actor"] and timeline[-1]["action"]


def test_ticket_page_escapes_what_consumers_wrote(client, services, people):
    make_ticket(services, NO, facts="<script>alert(1)</script>", merchant_name="<b>店</b>")
    login(client, services, people["food"])
    page = client.get(f"/staff/tickets/{NO}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>店</b>" not in page


def test_settlement_and_evidence_are_shown(client, services, people, tmp_path):
    make_ticket(services, NO, state="settled", photos=["media-ok", "media-pending"], proposal="退款50元")
    services.store.save_settlement(NO, {"no": NO, "terms": "退款50元", "settled_at": services.clock(),
                                        "parties": {"merchant": {"name": "好又多超市"}}})
    services.config["data_dir"] = str(tmp_path)
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "abc.jpg").write_bytes(b"\xff\xd8\xff photo")
    services.store.save_media("media-ok", {"sha256": "abc", "path": "media/abc.jpg", "size": 2048,
                                           "content_type": "image/jpeg", "at": services.clock()})
    login(client, services, people["food"])
    page = client.get(f"/staff/tickets/{NO}").get_data(as_text=True)
    assert "调解协议" in page and "退款50元" in page
    assert "证据（2）" in page and "image/jpeg" in page and "尚未下载或下载失败" in page
    with client.get(f"/staff/tickets/{NO}/evidence/media-ok") as photo:  # closes the file it streams
        assert photo.status_code == 200 and photo.data == b"\xff\xd8\xff photo"
        assert photo.mimetype == "image/jpeg"
    assert client.get(f"/staff/tickets/{NO}/evidence/media-pending").status_code == 404
    assert client.get(f"/staff/tickets/{NO}/evidence/someone-elses").status_code == 404


@pytest.mark.parametrize("who,full", [("food", True), ("intake", True), ("leader", False), ("admin", False)])
def test_phone_is_masked_unless_the_role_calls_the_consumer(client, services, people, tickets, who, full):
    login(client, services, people[who])
    page = client.get(f"/staff/tickets/{NO}").get_data(as_text=True)
    assert (PHONE in page) is full
    if not full:
        assert "138****5678" in page


def test_a_ticket_one_may_not_see_is_403_and_a_missing_one_404(client, services, people, tickets):
    login(client, services, people["quality"])
    assert client.get(f"/staff/tickets/{NO}").status_code == 403
    assert act(client, NO_QUAL, "take").status_code == 302  # token from a page it may see
    response = client.post(f"/staff/tickets/{NO}/actions",
                           data={"action": "take", "csrf_token": token(client, "/staff/tickets")})
    assert response.status_code == 403
    assert services.store.load_ticket(NO).state == "submitted"
    assert client.get("/staff/tickets/LZ-20261203-0099").status_code == 404
    assert client.get("/staff/tickets/20261203-3").status_code == 200  # the short form staff type


# --- actions ------------------------------------------------------------------------------------

def queued(services) -> int:
    return services.outbound.queue.count


def test_take_runs_the_command_audits_it_and_queues_the_consumer_notice(client, services, people, tickets):
    login(client, services, people["food"])
    response = act(client, NO, "take")
    assert response.status_code == 302 and response.headers["Location"] == f"/staff/tickets/{NO}"
    assert "已受理" in flash_text(client, NO)
    ticket = services.store.load_ticket(NO)
    assert ticket.state == "accepted"
    assert queued(services) == 1  # the consumer's notice, for the worker; nothing was sent in the request
    assert [(e["actor"], e["action"], e["result"]) for e in services.audit.timeline(NO) if e["action"] == "take"] == [
        (people["food"].id, "take", "ok")]
    # Again: the command's own refusal comes back as the flash message; nothing more is queued.
    act(client, NO, "take")
    assert "该工单已被受理或已结束" in flash_text(client, NO)
    assert queued(services) == 1


MERCHANT = "oMerchant0001"

# action → (ticket fields before, form fields, what must hold afterwards)
SCENARIOS = {
    "take": ({}, {}, lambda t, s: t.state == "accepted"),
    "invite": ({"state": "accepted"}, {}, lambda t, s: len(t.invite_code) == 6),
    "propose": ({"state": "mediating", "merchant": MERCHANT}, {"terms": "退款 50 元，并赔礼道歉"},
                lambda t, s: t.state == "proposal" and t.proposal == "退款 50 元，并赔礼道歉"),
    "remind": ({"state": "mediating", "merchant": MERCHANT}, {}, lambda t, s: s.outbound.queue.count == 2),
    "note": ({}, {"text": "已电话联系商家，明日回复"},
             lambda t, s: s.audit.timeline(NO)[-1]["detail"] == "已电话联系商家，明日回复"),
    "transfer": ({}, {"unit": "product_quality"}, lambda t, s: t.unit == "product_quality" and t.state == "submitted"),
    "return": ({}, {"reason": "不属于本科室职责"},
               lambda t, s: t.unit == "consumer_rights" and t.returned_reason == "不属于本科室职责"),
    "escalate": ({}, {"level": "consult", "reason": "案情复杂，需要会商"},
                 lambda t, s: t.escalated == "consult" and t.escalation_reason == "案情复杂，需要会商"),
    "settled": ({"state": "mediating", "merchant": MERCHANT}, {"terms": "商家退款50元"},
                lambda t, s: t.state == "settled" and s.store.settlement(NO)["terms"] == "商家退款50元"),
    "close": ({"state": "accepted"}, {"reason": "2", "detail": "商家拒绝"},
              lambda t, s: t.state == "terminated" and t.terminated_reason == TERMINATION_REASONS["2"] + "（商家拒绝）"),
    "reopen": ({"state": "terminated"}, {"reason": "消费者反映商家未履行"},
               lambda t, s: t.state == "accepted" and t.reopened == 1),
}


def test_every_action_has_a_scenario():
    assert set(SCENARIOS) == set(ACTIONS)


@pytest.mark.parametrize("action", sorted(SCENARIOS))
def test_each_action_form_runs_its_command_through_execute(client, services, people, action):
    before, form, holds = SCENARIOS[action]
    make_ticket(services, NO, **before)
    login(client, services, people["admin"])  # admins may run every command
    assert f'name="action" value="{action}"' in client.get(f"/staff/tickets/{NO}").get_data(as_text=True)
    response = act(client, NO, action, **form)
    assert response.status_code == 302 and response.headers["Location"] == f"/staff/tickets/{NO}"
    answer = flash_text(client, NO)
    assert answer and "没有执行" not in answer
    assert holds(services.store.load_ticket(NO), services), answer
    entry = [e for e in services.audit.timeline(NO) if e["action"] == ACTIONS[action].command][-1]
    assert entry["actor"] == people["admin"].id and entry["result"] == "ok"


def refused_role(action: str) -> str | None:
    allowed = COMMANDS[ACTIONS[action].command].roles
    return next((role for role in ("leader", "unit", "intake", "mobile") if role not in allowed), None)


ROLE_PERSON = {"leader": "leader", "unit": "food", "intake": "intake", "mobile": "mobile"}


@pytest.mark.parametrize("action", sorted(a for a in SCENARIOS if refused_role(a)))
def test_each_action_is_refused_by_execute_for_a_role_that_may_not_run_it(client, services, people, action):
    role = refused_role(action)
    before, form, _ = SCENARIOS[action]
    # The mobile team only sees escalated tickets: make this one visible, so it is the role that is refused.
    make_ticket(services, NO, **{**before, **({"escalated": "mobile"} if role == "mobile" else {})})
    fields = services.store.load_ticket(NO).to_fields()
    login(client, services, people[ROLE_PERSON[role]])
    page = client.get(f"/staff/tickets/{NO}").get_data(as_text=True)
    assert page.count(f'name="action" value="{action}"') == 0  # not offered ...
    act(client, NO, action, **form)                              # ... and refused when posted anyway
    assert "没有执行" in flash_text(client, NO)
    assert services.store.load_ticket(NO).to_fields() == fields
    assert services.outbound.queue.count == 0
    entry = services.audit.timeline(NO)[-1]
    assert entry["actor"] == people[ROLE_PERSON[role]].id and entry["result"] == "refused"


def test_forms_follow_the_state_and_the_role(client, services, people):
    make_ticket(services, NO)
    make_ticket(services, NO_FOOD, state="terminated")
    login(client, services, people["admin"])
    offered = lambda no: set(re.findall(r'name="action" value="([a-z]+)"',  # noqa: E731
                                        client.get(f"/staff/tickets/{no}").get_data(as_text=True)))
    assert offered(NO) == {"take", "remind", "note", "transfer", "return", "escalate", "close"}
    assert offered(NO_FOOD) == {"remind", "note", "escalate", "reopen"}
    client.post("/staff/logout", data={"csrf_token": token(client, "/staff/tickets")})
    login(client, services, people["leader"])
    assert "take" not in offered(NO) and "note" in offered(NO)


def test_close_only_takes_a_statutory_reason(client, services, people, tickets):
    login(client, services, people["food"])
    for reason in ["9", "不想办了", "", "settled"]:
        assert act(client, NO, "close", reason=reason).status_code == 400
    assert services.store.load_ticket(NO).state == "submitted"
    page = client.get(f"/staff/tickets/{NO}").get_data(as_text=True)
    for number, text in TERMINATION_REASONS.items():
        assert f'<option value="{number}">{number}. {text}</option>' in page


@pytest.mark.parametrize("data", [
    {"action": "fly"},
    {"action": ""},
    {"action": "propose"},                         # no terms
    {"action": "propose", "terms": "x" * 5000},    # too long
    {"action": "help"},                            # a command, but not a ticket action
])
def test_bad_action_posts_are_4xx_and_change_nothing(client, services, people, tickets, data):
    login(client, services, people["food"])
    response = client.post(f"/staff/tickets/{NO}/actions",
                           data={**data, "csrf_token": token(client, f"/staff/tickets/{NO}")})
    assert 400 <= response.status_code < 500
    assert services.store.load_ticket(NO).state == "submitted"


def test_junk_input_never_gives_a_500(client, services, people, tickets):
    login(client, services, people["food"])
    csrf = token(client, "/staff/tickets")
    gets = ["/staff/tickets/%00", "/staff/tickets/" + "9" * 5000, "/staff/tickets/LZ-20261203-0001%0d%0a",
            "/staff/tickets/../../etc/passwd", "/staff/tickets/LZ-20261203-0001/evidence/%2e%2e",
            "/staff/tickets?view=unit&state=" + "x" * 3000, "/staff/tickets?unit[]=1", "/staff/nothing",
            "/staff/login?next=%00", "/staff/static/..%2f..%2fapp.py"]
    for path in gets:
        assert client.get(path).status_code < 500, path
    posts = [("/staff/tickets/%00/actions", {"action": "take"}),
             (f"/staff/tickets/{NO}/actions", {"action": "take\x00"}),
             (f"/staff/tickets/{NO}/actions", {"action": "close", "reason": "\x00"}),
             ("/staff/login", {"name": "李" * 500, "secret": "1"}),
             ("/staff/login", {"name": "\x00", "secret": "\x00"}),
             ("/staff/tickets", {})]
    for path, data in posts:
        assert client.post(path, data={**data, "csrf_token": csrf}).status_code < 500, path
    raw = client.post(f"/staff/tickets/{NO}/actions", data=b"\xff\xfe\x00garbage",
                      content_type="application/x-www-form-urlencoded")
    assert raw.status_code == 400
    assert client.put("/staff/tickets").status_code == 405


def test_pages_are_not_cached_or_framed(client, services, people, tickets):
    login(client, services, people["food"])
    response = client.get(f"/staff/tickets/{NO}")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    cookie = client.get_cookie("staff_session", path="/staff")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_the_webhook_still_works_without_a_session(wechat, services, redis_data):
    wechat.text("oConsumer0001", "在好又多超市买的牛奶过期了")
    assert not redis_data.exists(services.keys.dashboard_secret())  # the webhook never needs the session key


def test_dashboard_key_formats():
    keys = Keys("med")
    assert keys.dashboard_secret() == "med:dashboard:secret"
    assert keys.dashboard_session("abc") == "med:dashboard:session:abc"
    assert keys.login_failures("李食品") == "med:dashboard:login_failures:李食品"

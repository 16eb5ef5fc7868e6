"""Staff records in Redis, the binding flow over the webhook, dashboard passwords and login codes,
the ``staff`` CLI, and the config-listed staff that still work as a bootstrap."""

from __future__ import annotations

import io
import re

import pytest
import yaml

from bot.app import build_services
from bot.cli import main
from handlers import operator
from storage.keys import Keys
from storage.staff import StaffStore
from tests.conftest import CONSUMER, STAFF, test_config


# --- the store --------------------------------------------------------------------------------------

def test_add_get_find_list_and_remove(services):
    store = services.staff
    a, code = store.add("李明", "food_business", "unit")
    b, _ = store.add("赵局长", "", "leader")
    assert re.fullmatch(r"\d{8}", code) and a.id == "S001" and b.id == "S002"
    assert store.get(a.id) == a and store.by_name("李明") == a and store.find("s1") == a and store.find("赵局长") == b
    assert [r.name for r in store.all()] == ["李明", "赵局长"]
    assert store.by_openid("oNobody") is None and a.openid == ""
    assert store.remove(a.id) and not store.remove(a.id)
    assert store.get(a.id) is None and store.by_name("李明") is None and [r.id for r in store.all()] == [b.id]
    assert store.bind(code, "oLiMing") is None  # the removed person's code died with the record
    assert store.add("李明", "food_business", "unit")[0].id == "S003"  # ids are never reused


@pytest.mark.parametrize("name,role,why", [("", "unit", "姓名"), ("李 明", "unit", "空格"), ("李明", "boss", "未知角色")])
def test_add_refuses_bad_input_in_chinese(services, name, role, why):
    with pytest.raises(ValueError, match=why):
        services.staff.add(name, "food_business", role)


def test_names_are_unique_because_the_dashboard_logs_in_by_name(services):
    services.staff.add("李明", "food_business", "unit")
    with pytest.raises(ValueError, match="已有名为“李明”"):
        services.staff.add("李明", "catering", "unit")


def test_binding_is_one_time_and_one_person_per_openid(services):
    store = services.staff
    a, code_a = store.add("李明", "food_business", "unit")
    b, code_b = store.add("王芳", "catering", "unit")
    bound = store.bind(code_a, "oLiMing")
    assert bound.openid == "oLiMing" and store.by_openid("oLiMing").id == a.id
    assert store.bind(code_a, "oSomeoneElse") is None  # used
    assert store.bind(code_b, "oLiMing") is None  # this WeChat already is 李明 ...
    assert store.bind(code_b, "oWangFang").id == b.id  # ... and the code was not used up by that
    # A new code (lost phone) moves the binding to the new WeChat.
    new_code = store.issue_bind_code(a.id)
    assert store.bind(new_code, "oLiMingNew").openid == "oLiMingNew"
    assert store.by_openid("oLiMing") is None and store.get(a.id).openid == "oLiMingNew"


def test_wrong_binding_codes_lock_the_sender_out_for_a_while(services, redis_data):
    for _ in range(5):
        assert services.staff.bind("00000000", "oGuesser") is None
    assert services.staff.bind_locked("oGuesser") and not services.staff.bind_locked("oOther")
    assert 0 < redis_data.ttl(services.keys.staff_bind_failures("oGuesser")) <= 3600


def test_passwords_are_salted_scrypt_and_checked(services, redis_data):
    record, _ = services.staff.add("李明", "food_business", "unit")
    assert services.staff.check_password("李明", "whatever1") is None  # none set yet
    with pytest.raises(ValueError, match="至少8个字符"):
        services.staff.set_password(record.id, "short")
    services.staff.set_password(record.id, "临淄-调解-2026")
    stored = redis_data.hget(services.keys.staff(record.id), "password")
    assert stored.startswith("scrypt$") and "临淄" not in stored
    assert services.staff.check_password("李明", "临淄-调解-2026") == record
    assert services.staff.check_password("李明", "临淄-调解-2025") is None
    assert services.staff.check_password("无此人", "临淄-调解-2026") is None
    services.staff.set_password(record.id, "临淄-调解-2026")
    assert redis_data.hget(services.keys.staff(record.id), "password") != stored  # a fresh salt each time


def test_login_codes_work_once_and_a_wrong_one_does_not_burn_them(services, redis_data):
    record, _ = services.staff.add("李明", "food_business", "unit")
    code = services.staff.issue_login_code(record.id)
    assert re.fullmatch(r"\d{6}", code)
    assert 0 < redis_data.ttl(services.keys.staff_login_code(record.id)) <= 600
    wrong = "000000" if code != "000000" else "111111"
    assert services.staff.use_login_code("李明", wrong) is None
    assert services.staff.use_login_code("王芳", code) is None
    assert services.staff.use_login_code("李明", code) == record
    assert services.staff.use_login_code("李明", code) is None


# --- binding over WeChat --------------------------------------------------------------------------

def test_binding_flow_over_the_webhook(wechat, services, bind_staff):
    assert wechat.text("oLiMing", "/help").content == operator.NOT_STAFF  # not staff yet
    record = bind_staff("oLiMing", "李明", "food_business", "unit")
    assert record.openid == "oLiMing"
    assert "可用命令" in wechat.text("oLiMing", "/help").content
    assert [(e["actor"], e["action"]) for e in services.audit.recent(2)] == [(record.id, "help"), (record.id, "bind")]
    # The same code again, from anyone, does nothing.
    code = services.staff.issue_bind_code(services.staff.add("王芳", "catering", "unit")[0].id)
    assert "绑定成功" in wechat.text("oWangFang", f"绑定：{code}").content
    assert "无效" in wechat.text("oThief", f"绑定 {code}").content
    assert "已绑定为工作人员“李明”" in wechat.text("oLiMing", f"绑定 {services.staff.issue_bind_code('S002')}").content
    assert services.store.load_user("oThief") == {}  # no complaint intake was started either


def test_wrong_codes_over_the_webhook_are_limited(wechat, services):
    for i in range(5):
        assert "无效" in wechat.text("oGuesser", f"绑定 {10000000 + i}").content
    record, code = services.staff.add("李明", "food_business", "unit")
    assert "次数过多" in wechat.text("oGuesser", f"绑定 {code}").content
    assert services.staff.get(record.id).openid == ""


def test_a_removed_staff_member_is_a_member_of_the_public_again(wechat, services, bind_staff):
    record = bind_staff("oLiMing", "李明", "food_business", "unit")
    services.staff.remove(record.id)
    assert wechat.text("oLiMing", "/list").content == operator.NOT_STAFF


# --- config-listed staff: the bootstrap path ------------------------------------------------------

def test_config_listed_staff_still_work_and_a_binding_wins(wechat, services, bind_staff):
    intake = services.directory.staff_for(STAFF["consumer_rights"])
    food = services.directory.staff_for(STAFF["food_business"])
    assert (intake.role, food.role, food.unit) == ("intake", "unit", "food_business")
    assert "/transfer" in wechat.text(STAFF["consumer_rights"], "/help").content
    bind_staff(STAFF["food_business"], "李明", "food_business", "leader")
    assert services.directory.staff_for(STAFF["food_business"]).role == "leader"
    assert "/take" not in wechat.text(STAFF["food_business"], "/help").content


def test_new_ticket_notices_go_to_the_units_bound_staff(services, redis_handle, router, bind_staff):
    config = test_config()
    for unit in config["units"]:
        unit["staff"] = []
    bare = build_services(config, redis_handle=redis_handle, router=router)
    assert bare.directory.staff_of("food_business") == []
    bind_staff("oLiMing", "李明", "food_business", "unit")
    bind_staff("oZhang", "张受理", "consumer_rights", "intake")
    bind_staff("oBoss", "赵局长", "food_business", "leader")
    assert [m.openid for m in bare.directory.staff_of("food_business")] == ["oLiMing"]
    assert [m.openid for m in bare.directory.staff_of("catering")] == ["oZhang"]  # nobody there: intake


# --- the CLI --------------------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path, monkeypatch, redis_handle, redis_data, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"wechat": {"token": "testtoken"}}), encoding="utf-8")
    monkeypatch.setenv("REDIS_URL", redis_handle.url)

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["staff", *argv, "--config", str(path)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_add_then_bind_by_wechat_then_list_and_remove(cli, wechat, services):
    code, out, _ = cli("add", "--name", "李明", "--unit", "食品经营", "--role", "承办人员")
    assert code == 0 and "S001 李明 (食品经营安全监管科, 承办人员)" in out
    binding = re.search(r"binding code: (\d{8})", out).group(1)
    assert "绑定成功" in wechat.text("oLiMing", f"绑定 {binding}").content
    code, out, _ = cli("add", "--name", "张受理", "--role", "intake")
    assert code == 0 and "消费者权益保护科" in out  # intake staff default to the intake unit
    code, out, _ = cli("list")
    assert re.search(r"S001\s+李明.*bound", out) and re.search(r"S002\s+张受理.*not bound \(code \d{8}\)", out)
    assert "listed in config" not in out  # the CLI's own config lists nobody
    assert cli("remove", "李明")[0] == 0
    assert wechat.text("oLiMing", "/help").content == operator.NOT_STAFF
    assert [e["action"] for e in services.audit.recent(10)][:1] == ["staff_remove"]


@pytest.mark.parametrize("argv,why", [
    (["--name", "李明", "--unit", "nowhere", "--role", "unit"], "没有单位"),
    (["--name", "李明", "--unit", "food_business", "--role", "boss"], "未知角色"),
    (["--name", "李明", "--role", "unit"], "必须用 --unit"),
])
def test_cli_add_refuses_what_the_config_does_not_know(cli, argv, why):
    code, _, err = cli("add", *argv)
    assert code == 2 and why in err


def test_cli_password_and_login_code(cli, services):
    cli("add", "--name", "赵局长", "--role", "leader")
    assert cli("password", "赵局长", "--password", "临淄-调解-2026")[0] == 0
    assert services.staff.check_password("赵局长", "临淄-调解-2026") is not None
    assert cli("password", "S001", stdin="另一个长密码123\n")[0] == 0
    assert services.staff.check_password("赵局长", "另一个长密码123") is not None
    code, _, err = cli("password", "赵局长", "--password", "short")
    assert code == 2 and "至少8个字符" in err
    code, out, _ = cli("login-code", "赵局长")
    login = re.search(r": (\d{6}) ", out).group(1)
    assert services.staff.use_login_code("赵局长", login).name == "赵局长"
    assert cli("login-code", "无此人")[0] == 1


def test_cli_rebind_issues_a_new_code(cli, wechat, services):
    _, out, _ = cli("add", "--name", "李明", "--unit", "food_business", "--role", "unit")
    first = re.search(r"binding code: (\d{8})", out).group(1)
    _, out, _ = cli("rebind", "李明")
    second = re.search(r"(\d{8})", out).group(1)
    assert "无效" in wechat.text("oLiMing", f"绑定 {first}").content
    assert "绑定成功" in wechat.text("oLiMing", f"绑定 {second}").content


def test_store_needs_no_flask_or_webhook(redis_data):
    store = StaffStore(redis_data, Keys("t4"))
    record, _ = store.add("李明", "food_business", "unit")
    assert redis_data.exists(f"t4:staff:{record.id}")
    assert store.by_openid(CONSUMER) is None


def test_bind_without_a_code_says_what_is_missing_and_starts_nothing(wechat, services):
    reply = wechat.text("oNobody01", "绑定")
    assert "绑定码" in reply.content
    assert "intake" not in services.store.load_user("oNobody01")

"""The audit trail (Redis Streams): every command and state change, per ticket and global, in the
same transaction as the change; the transcript read back with sender roles; masking for merchants."""

from __future__ import annotations

import logging
import re

from flows.mediation import Ticket
from handlers.merchant import brief_for_merchant, redact
from storage.audit import Audit
from tests.conftest import CONSUMER, MERCHANT
from tests.test_operator import PEOPLE, new_ticket, people, say, ticket_in  # noqa: F401 - people is a fixture


def test_record_timeline_and_recent(services, redis_data):
    audit = services.audit
    audit.record("LZ-20261203-0001", "S001", "take", "", name="李明", result="ok")
    audit.record(None, "cli:root", "staff_add", "S002 王芳")
    audit.record("LZ-20261203-0001", "S001", "note", "已电话联系商家")
    timeline = audit.timeline("LZ-20261203-0001")
    assert [(e["actor"], e["action"], e["detail"]) for e in timeline] == [
        ("S001", "take", ""), ("S001", "note", "已电话联系商家")]
    assert timeline[0]["name"] == "李明" and timeline[0]["no"] == "LZ-20261203-0001"
    assert isinstance(timeline[0]["at"], float) and timeline[0]["at"] > 0
    assert [e["action"] for e in audit.recent(2)] == ["note", "staff_add"]  # newest first
    assert redis_data.type("med:audit") == "stream" and redis_data.xlen("med:audit") == 3
    assert redis_data.xlen("med:ticket:LZ-20261203-0001:audit") == 2


def test_an_entry_in_a_pipeline_commits_with_the_change_or_not_at_all(services):
    pipe = services.store.pipeline()
    services.audit.record("LZ-1", "S001", "state", "submitted → accepted", pipeline=pipe)
    assert services.audit.timeline("LZ-1") == []
    pipe.reset()  # the transaction was abandoned: no entry either
    assert services.audit.timeline("LZ-1") == []
    pipe = services.store.pipeline()
    services.audit.record("LZ-1", "S001", "state", "submitted → accepted", pipeline=pipe)
    pipe.execute()
    assert [e["detail"] for e in services.audit.timeline("LZ-1")] == ["submitted → accepted"]


def test_streams_are_capped(services, redis_data):
    audit = Audit(redis_data, services.keys, maxlen=50, ticket_maxlen=50)
    for i in range(1000):
        audit.record("LZ-1", "S001", "note", str(i))
    assert redis_data.xlen("med:audit") < 1000 and redis_data.xlen("med:ticket:LZ-1:audit") < 1000
    assert audit.timeline("LZ-1")[-1]["detail"] == "999"  # trimming drops the oldest


def test_a_mediation_leaves_a_full_timeline(wechat, services, people):
    no = ticket_in("proposal", wechat, services)
    say(wechat, CONSUMER, "同意")
    say(wechat, MERCHANT, "同意")  # the second yes settles it, in the merchant's request
    food = people["food"].id
    trail = [(e["actor"], e["action"], e["detail"], e.get("result", "")) for e in services.audit.timeline(no)]
    assert trail == [
        (food, "state", "submitted → accepted", ""),
        (food, "take", "", "ok"),
        (food, "invite", "", "ok"),
        ("merchant", "join", "商家凭邀请码加入调解", ""),
        ("merchant", "state", "accepted → mediating", ""),
        (food, "state", "mediating → proposal", ""),
        (food, "propose", "退款25元", "ok"),
        ("merchant", "state", "proposal → settled", ""),
    ]


def test_refused_commands_are_logged_and_audited(wechat, services, people, caplog):
    no = new_ticket(services, unit="product_quality")
    with caplog.at_level(logging.WARNING, logger="handlers.operator"):
        assert "权限" in say(wechat, "leader", f"/take {no}")
    assert any("refused /take" in r.getMessage() and people["leader"].id in r.getMessage() for r in caplog.records)
    assert "不在您" in say(wechat, "food", f"/take {no}")
    refused = [(e["actor"], e["result"]) for e in services.audit.timeline(no)]
    assert refused == [(people["leader"].id, "refused"), (people["food"].id, "refused")]
    assert "role leader" in services.audit.timeline(no)[0]["reason"]
    assert services.store.load_ticket(no).state == "submitted"


def test_every_command_is_audited_even_reading_ones(wechat, services, people):
    no = new_ticket(services)
    for line in ["/help", "/list", f"/show {no}", "/stats", "/nonsense"]:
        say(wechat, "leader", line)
    actions = [e["action"] for e in reversed(services.audit.recent(5))]
    assert actions == ["help", "list", "show", "stats", "unknown"]
    assert [e["action"] for e in services.audit.timeline(no)] == ["show"]


def test_the_transcript_reads_back_with_sender_roles(wechat, services, people):
    no = ticket_in("mediating", wechat, services)
    say(wechat, CONSUMER, "牛奶是上周买的")
    say(wechat, MERCHANT, "我们核实一下")
    say(wechat, "food", "请双方保持沟通")
    said = [(e["role"], e["text"]) for e in services.store.transcript(no) if e["role"] != "system"]
    assert said == [("consumer", "牛奶是上周买的"), ("merchant", "我们核实一下"), ("mediator", "请双方保持沟通")]


# --- what the merchant sees ---------------------------------------------------------------------------

def test_redact_masks_numbers_that_identify_a_person():
    assert redact("电话13800001234，座机0533-7181234") == "电话138****1234，座机0533-****1234"
    assert redact("身份证37030319900101123X") == "身份证370303********123X"
    assert redact("订单号202612031234567890，金额25元") == "订单号202612031234567890，金额25元"
    assert redact("") == ""


def test_the_merchant_sees_only_what_mediation_needs(wechat, services, people):
    no = new_ticket(services, facts="我叫刘洋，电话13912345678，身份证370303199001011234，在华联超市买到过期牛奶")
    say(wechat, "food", f"/take {no}")
    code = re.search(r"邀请码：(\d{6})", say(wechat, "food", f"/invite {no}")).group(1)
    joined = say(wechat, MERCHANT, code)
    assert "已加入" in joined and "过期牛奶" in joined and "退款" in joined
    assert "138****1234" in joined and "139****5678" in joined and "370303********1234" in joined
    for secret in ("13800001234", "13912345678", "370303199001011234", CONSUMER, PEOPLE["food"][0]):
        assert secret not in joined
    ticket = Ticket(no="LZ-1", consumer=CONSUMER, facts="x", demand="退款，电话13800001234", phone="13800001234")
    assert "13800001234" not in brief_for_merchant(ticket)


def test_the_consumers_own_state_changes_are_in_the_timeline(wechat, services):
    from tests.test_main_path import FOOD_STAFF, file_complaint

    no = file_complaint(wechat)
    wechat.text(FOOD_STAFF, f"/take {no}")
    wechat.text(FOOD_STAFF, f"/close {no} 3")
    wechat.text(CONSUMER, "4")  # the rating closes the ticket: the consumer changed its state
    entries = [(e["actor"], e["action"], e["detail"]) for e in services.audit.timeline(no)]
    assert entries[0][:2] == ("consumer", "created")
    assert ("consumer", "state", "terminated → closed") in entries

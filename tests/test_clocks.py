"""Clocks over the real webhook and real RQ jobs in Redis: each deadline fires once, is cancelled or
moved when the ticket changes, and survives the worker being killed. Time is moved, never slept:
the services run on an injected clock, ``Clocks.release_due(now)`` does what RQ's scheduler does at
that instant, and an RQ SimpleWorker in burst mode runs what is due."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest
import yaml
from rq import SimpleWorker, Worker

from bot.app import build_services
from bot.clocks import init_clocks
from flows.workdays import CHINA
from tests.conftest import CONSUMER, MERCHANT, REPO, STAFF
from tests.test_main_path import file_complaint

FOOD = STAFF["food_business"]  # listed in the test config as the food unit's staff
MOBILE, LEADER = "oClockMobile", "oClockLeader"


class FakeClock:
    def __init__(self, start: float):
        self.t = start

    def __call__(self) -> float:
        return self.t


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA).timestamp()


@pytest.fixture
def now():
    return FakeClock(at("2026-12-03 10:00"))  # a Thursday


@pytest.fixture
def services(config, redis_handle, redis_data, router, now):
    """The conftest services, on the injected clock; the clock worker reaches them (init_clocks)."""
    built = build_services(config, redis_handle=redis_handle, router=router, clock=now)
    init_clocks(built)
    yield built
    init_clocks(None)


@pytest.fixture
def team(bind_staff):
    return {"mobile": bind_staff(MOBILE, "孙机动", "", "mobile"), "leader": bind_staff(LEADER, "赵局长", "", "leader")}


def advance(services, hours: float) -> None:
    """Move time forward, release what is due (the scheduler's job) and run it (the worker's)."""
    services.clock.t += hours * 3600
    services.clocks.release_due(services.clock())
    SimpleWorker([services.clocks.queue], connection=services.redis.raw,
                 serializer=services.clocks.queue.serializer).work(burst=True, with_scheduler=False)


def messages(services, marker: str = "") -> list[tuple[str, str]]:
    """(recipient, text) of every queued outbound message, optionally only those containing marker."""
    out = []
    for job in services.outbound.queue.jobs:
        if job.func_name == "bot.outbound.deliver" and marker in job.kwargs["text"]:
            out.append((job.kwargs["to"], job.kwargs["text"]))
    return out


def clock_entries(services, no: str, kind: str) -> list[dict]:
    return [e for e in services.audit.timeline(no) if e["action"] == f"clock:{kind}"]


# --- the 24-hour response -------------------------------------------------------------------------

def test_unanswered_ticket_is_reminded_then_escalated_once(wechat, services, team):
    no = file_complaint(wechat)
    assert set(services.clocks.pending(no, ["remind", "response"])) == {"remind", "response"}

    advance(services, 19.9)
    assert not messages(services, "【提醒】")  # nothing before the reminder point
    advance(services, 0.2)  # 20 h: the unit's staff are reminded, nobody else
    assert [to for to, _ in messages(services, "【提醒】")] == [FOOD]

    advance(services, 4)  # 24 h: escalated to the mobile team and the leader, with a mark on the ticket
    ticket = services.store.load_ticket(no)
    assert ticket.escalated == "mobile" and "response" in ticket.overdue
    assert sorted(to for to, _ in messages(services, "【自动上报")) == sorted([MOBILE, LEADER])

    # A replayed job (RQ running it again, a staff member replaying it) changes nothing.
    due = ticket.response_due
    from handlers.clocks import run_clock
    assert run_clock(services, no, "response", due) == "already fired"
    advance(services, 48)
    assert len(messages(services, "【自动上报")) == 2 and len(clock_entries(services, no, "response")) == 1
    assert services.clocks.pending(no, ["remind", "response"]) == {}


def test_taking_the_ticket_cancels_the_response_clock(wechat, services, team):
    no = file_complaint(wechat)
    assert "已受理" in wechat.text(FOOD, f"/take {no}").content
    # Cancelled in the same write as the take: no job is left to fire.
    assert services.clocks.pending(no, ["remind", "response"]) == {}
    advance(services, 30)
    assert not messages(services, "【提醒】") and not messages(services, "【自动上报")
    assert services.store.load_ticket(no).escalated == ""


def test_a_staff_reply_to_the_consumer_stops_the_clock(wechat, services, team):
    no = file_complaint(wechat)
    assert "已答复" in wechat.text(FOOD, f"/reply {no} 您好，已收到，我们今天联系商家").content
    assert any(to == CONSUMER for to, _ in messages(services, "今天联系商家"))
    advance(services, 30)
    assert services.store.load_ticket(no).escalated == "" and not clock_entries(services, no, "response")


def test_a_transfer_moves_the_deadline_to_the_new_unit(wechat, services, team, bind_staff):
    bind_staff("oClockIntake", "张受理", "consumer_rights", "intake")
    no = file_complaint(wechat)
    advance(services, 10)
    assert "已将" in wechat.text("oClockIntake", f"/transfer {no} product_quality").content
    moved = services.clocks.pending(no, ["response"])["response"]
    assert moved == pytest.approx(services.clock() + 24 * 3600, abs=1)
    advance(services, 15)  # 25 h after the complaint, 15 h after the transfer: not late yet
    assert services.store.load_ticket(no).escalated == ""
    advance(services, 10)
    assert services.store.load_ticket(no).escalated == "mobile"


# --- a worker killed while a deadline is due -----------------------------------------------------

def _start_worker(config_path, url) -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=url, BOT_CONFIG=str(config_path))
    return subprocess.Popen([sys.executable, "-m", "bot", "worker", "--config", str(config_path)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_deadline_survives_a_killed_worker_and_fires_once(tmp_path, wechat, services, team, now):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({k: v for k, v in services.config.items() if not k.startswith("_")},
                                          allow_unicode=True), encoding="utf-8")
    raw = services.redis.raw
    first = _start_worker(config_path, services.redis.url)
    try:
        assert _wait(lambda: any(w.pid == first.pid for w in Worker.all(connection=raw))), "worker did not start"
        # The complaint came in 25 hours ago (real time): its 24-hour deadline is already due,
        # so the running worker may or may not get to it before it is killed.
        now.t = time.time() - 25 * 3600
        no = file_complaint(wechat)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

    # The dead worker's scheduler lock stays for about a minute; release what is due as the
    # scheduler would, then start the worker again.
    services.clocks.release_due(time.time())
    second = _start_worker(config_path, services.redis.url)
    try:
        assert _wait(lambda: len(clock_entries(services, no, "response")) == 1), "the deadline never fired"
    finally:
        second.terminate()
        second.wait(timeout=10)
    # Run anything left once more, as a third worker would: still exactly one escalation.
    services.clock.t = time.time()
    advance(services, 0)
    ticket = services.store.load_ticket(no)
    assert ticket.escalated == "mobile"
    assert len(clock_entries(services, no, "response")) == 1
    assert sum(m.startswith("response@") for m in ticket.fired) == 1


# --- follow-up (回访) -----------------------------------------------------------------------------

@pytest.mark.parametrize("answer,rating", [("1", 1), ("2 商家到现在还没退款", 2), ("不满意，商家态度很差", 0)])
def test_an_unhappy_rating_reopens_the_case_to_the_mobile_team(wechat, services, team, answer, rating):
    no = file_complaint(wechat)
    wechat.text(FOOD, f"/take {no}")
    wechat.text(FOOD, f"/close {no} 3")
    reply = wechat.text(CONSUMER, answer).content
    assert "重新开启" in reply and "机动维权小分队" in reply
    ticket = services.store.load_ticket(no)
    assert (ticket.state, ticket.escalated, ticket.rating, ticket.reopened) == ("accepted", "mobile", rating, 1)
    assert ticket.followed_up == answer
    # The mobile team is told with the consumer's own words, and sees the ticket in its list.
    assert any(to == MOBILE and answer in text for to, text in messages(services, "【回访不满意】"))
    assert no in wechat.text(MOBILE, "/list").content
    # A reopened case gets a fresh 60-day mediation period, not the one already running.
    assert services.clocks.pending(no, ["mediation"])["mediation"] > services.clock() + 59 * 86400


def test_a_good_rating_closes_and_an_unanswered_one_closes_unrated(wechat, services, team):
    no = file_complaint(wechat)
    wechat.text(FOOD, f"/take {no}")
    wechat.text(FOOD, f"/close {no} 3")
    assert "办结" in wechat.text(CONSUMER, "4").content
    assert services.store.load_ticket(no).state == "closed"

    other = file_complaint(wechat, "oConsumer0002")
    wechat.text(FOOD, f"/take {other}")
    wechat.text(FOOD, f"/close {other} 3")
    advance(services, 71)
    assert services.store.load_ticket(other).state == "terminated"
    advance(services, 2)  # rating_timeout_hours 72: closed without a rating, asked once only
    ticket = services.store.load_ticket(other)
    assert (ticket.state, ticket.rating) == ("closed", 0)
    assert len(clock_entries(services, other, "rating")) == 1


# --- statutory clocks on the working-day calendar -----------------------------------------------

def test_mediation_ends_sixty_days_after_acceptance_with_reason_five(wechat, services, team):
    no = file_complaint(wechat)
    wechat.text(FOOD, f"/take {no}")
    code = wechat.text(FOOD, f"/invite {no}").content.split("邀请码：")[1][:6]
    assert "已加入" in wechat.text(MERCHANT, code).content
    due = services.clocks.pending(no, ["mediation"])["mediation"]
    assert datetime.fromtimestamp(due, CHINA).strftime("%Y-%m-%d %H:%M") == "2027-02-01 23:59"
    advance(services, (due - services.clock()) / 3600 + 0.01)
    ticket = services.store.load_ticket(no)
    assert ticket.state == "terminated" and "六十日" in ticket.terminated_reason
    told = {to for to, _ in messages(services, "终止调解")}
    assert {CONSUMER, MERCHANT} <= told


def test_acceptance_deadline_counts_working_days_across_a_holiday(wechat, services, team, now):
    # Received on Monday 2026-09-28: National Day (10-01..10-07) is off and Saturday 10-10 is a
    # 调休 working day, so the 7th working day is Tuesday 10-13 (tests/test_workdays.py).
    now.t = at("2026-09-28 10:00")
    no = file_complaint(wechat)
    due = services.clocks.pending(no, ["acceptance"])["acceptance"]
    assert datetime.fromtimestamp(due, CHINA).strftime("%Y-%m-%d %H:%M") == "2026-10-13 23:59"
    advance(services, (due - services.clock()) / 3600 + 0.01)
    ticket = services.store.load_ticket(no)
    assert "acceptance" in ticket.overdue and len(clock_entries(services, no, "acceptance")) == 1
    assert any(to == LEADER for to, _ in messages(services, "【法定时限】"))


# --- the merchant joining and the proposal -------------------------------------------------------

def test_merchant_join_and_proposal_clocks(wechat, services, team):
    no = file_complaint(wechat)
    wechat.text(FOOD, f"/take {no}")
    code = wechat.text(FOOD, f"/invite {no}").content.split("邀请码：")[1][:6]
    advance(services, 25)
    assert any(to == FOOD for to, _ in messages(services, "尚未加入调解"))
    assert "已加入" in wechat.text(MERCHANT, code).content  # joining cancels the escalation
    assert services.clocks.pending(no, ["join_remind", "join_escalate"]) == {}
    assert "发给双方" in wechat.text(FOOD, f"/propose {no} 退款25元").content
    wechat.text(CONSUMER, "同意")
    advance(services, 25)  # only the merchant has not answered: only the merchant is reminded
    assert [to for to, _ in messages(services, "还在等您答复")] == [MERCHANT]
    advance(services, 48)
    ticket = services.store.load_ticket(no)
    assert ticket.state == "mediating" and ticket.agreed == []
    assert {to for to, _ in messages(services, "视为未答复")} == {CONSUMER, MERCHANT, FOOD}


# --- merchants who settle first (ODR / liaison stations) ----------------------------------------

CONTACT = "oHualianContact"


@pytest.fixture
def hualian(services, wechat, tmp_path):
    """华联 registered from the CLI (`merchant import`), its contact bound with `绑定 <code>`."""
    from bot.cli import main

    csv_path, config_path = tmp_path / "merchants.csv", tmp_path / "config.yaml"
    csv_path.write_text("name,kind,aliases,contact\n淄博华联超市有限公司临淄店,station,华联|华联超市,刘店长\n", "utf-8")
    config_path.write_text(yaml.safe_dump({"redis": {"url": services.redis.url}}), "utf-8")
    # The CLI talks to the same Redis as the test (REDIS_URL, if set, wins as in production).
    assert main(["merchant", "import", str(csv_path), "--config", str(config_path)]) == 0
    from storage.merchants import MerchantStore
    record = MerchantStore(services.redis.data, services.keys).all()[0]
    assert "联系人" in wechat.text(CONTACT, f"绑定 {record.bind_code}").content
    return record


def test_a_registered_merchant_settles_first_and_the_consumer_accepts(wechat, services, team, hualian):
    no = file_complaint(wechat)  # "…稷下街道华联超市买的牛奶…": matches 淄博华联超市有限公司临淄店
    ticket = services.store.load_ticket(no)
    assert ticket.state == "self_settling" and ticket.merchant_id == hualian.id
    assert not messages(services, "新工单") and any(to == CONTACT for to, _ in messages(services, "【先行和解】"))
    assert services.clocks.pending(no, ["response"]) == {}  # the unit's 24 hours have not started

    assert wechat.text(CONTACT, "您好，非常抱歉").content == ""  # relayed to the consumer
    assert any(to == CONSUMER for to, _ in messages(services, "【商家】您好，非常抱歉"))
    assert "已发给消费者" in wechat.text(CONTACT, "方案 全额退款并赠送购物卡50元").content
    assert "先行和解成功" in wechat.text(CONSUMER, "同意").content
    ticket = services.store.load_ticket(no)
    assert (ticket.state, ticket.self_settled) == ("settled", 1)
    assert services.store.settlement(no)["terms"] == "全额退款并赠送购物卡50元"
    advance(services, 30)  # the window's clock was cancelled by the settlement
    assert not clock_entries(services, no, "merchant_first")


def test_a_declined_offer_or_the_window_end_hands_the_ticket_to_the_unit(wechat, services, team, hualian):
    declined = file_complaint(wechat)
    wechat.text(CONTACT, "方案 退款一半")
    assert "转交" in wechat.text(CONSUMER, "不同意").content
    ticket = services.store.load_ticket(declined)
    assert (ticket.state, ticket.merchant) == ("submitted", "")
    assert services.clocks.pending(declined, ["response"])["response"] == pytest.approx(services.clock() + 86400, abs=1)

    silent = file_complaint(wechat, "oConsumer0002")
    advance(services, 24.1)  # merchant_first_window_hours: nobody settled
    ticket = services.store.load_ticket(silent)
    assert ticket.state == "submitted" and "期限届满" in ticket.handed_over
    assert any(to == FOOD and silent in text for to, text in messages(services, "新工单"))
    # The unit's 24 hours start at the hand-over: 20 h later the reminder, 24 h later escalation.
    advance(services, 24)
    assert services.store.load_ticket(silent).escalated == "mobile"


def test_a_merchant_name_is_registered_once(services, redis_data):
    import pytest

    from storage.merchants import MerchantStore

    merchants = MerchantStore(services.redis.data, services.keys)
    merchants.add("淄博银座商城有限公司", "station")
    with pytest.raises(ValueError, match="已登记"):
        merchants.add("淄博银座商城有限公司", "station")

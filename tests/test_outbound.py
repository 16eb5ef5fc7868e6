"""Issue 3, outgoing half: no message to a party is ever lost.

Real Redis, real RQ worker (burst), the WeChat API stand-in over real HTTP with injected faults,
an injected clock for windows, retry intervals of 0. Nothing of ours is mocked.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis
import yaml
from rq import SimpleWorker

from bot.app import build_services
from bot.cli import main as cli_main
from bot.outbound import DeliverySettings, Outbound, init_worker, make_queue
from bot.wechat_client import BureauWeChatClient
from handlers.base import Incoming, Outgoing
from storage.outbox import Outbox
from tests.conftest import CONSUMER, MERCHANT, STAFF, test_config

HOUR = 3600.0
T0 = 1_800_000_000.0  # 2027-01-15, an arbitrary fixed "now"


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, hours: float = 0, seconds: float = 0) -> None:
        self.now += hours * HOUR + seconds


# --- fixtures (test_media.py imports them too) ---------------------------------------------------

@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def delivery():
    """Overrides of the `delivery:` config section for one test module or test."""
    return {}


@pytest.fixture
def config(tmp_path, delivery):
    settings = {"window_hours": 48, "window_quota": 20, "retry_intervals": [0, 0], "templates": {}}
    settings.update(delivery)
    return test_config(data_dir=str(tmp_path), delivery=settings)


@pytest.fixture
def services(config, redis_handle, redis_data, router, clock):
    return build_services(config, redis_handle=redis_handle, router=router, clock=clock)


@pytest.fixture
def client_timeout():
    return 0.5  # the stand-in is local: a hang is a timeout after half a second


@pytest.fixture
def worker(services, standin, client_timeout):
    """Run the delivery worker (burst) over everything queued, against the stand-in."""
    client = BureauWeChatClient("wxtestappid", "testsecret", services.redis.data, services.keys,
                                standin.base_url, timeout=client_timeout)
    queue = services.outbound.queue
    init_worker(client, store=services.store, outbox=services.outbound.outbox, queue=queue,
                config=services.config, clock=services.clock)

    def run() -> list[tuple[str, str]]:
        SimpleWorker([queue], connection=services.redis.raw, serializer=queue.serializer).work(
            burst=True, with_scheduler=False)
        return standin.sent_texts()

    yield run
    init_worker(None)


def said(openid: str, text: str = "你好", msg_id: int = 0) -> Incoming:
    return Incoming(openid=openid, kind="text", text=text, msg_id=str(msg_id or abs(hash(text)) % 10**12))


def send(services, to: str, text: str, kind: str = "relay", ticket: str = "LZ-20270115-0001",
         sender: str = "oSomeoneElse") -> None:
    """What the webhook does after a handler put a message for `to` in its outbox."""
    services.outbound.after_message(said(sender, f"cause of {text}"), [Outgoing(to, text, kind, ticket)])


def texts_to(standin, openid: str) -> list[str]:
    return [text for to, text in standin.sent_texts() if to == openid]


# --- the webhook side: cheap and HTTP-free ----------------------------------------------------

def _counting_client(url: str, decode: bool) -> tuple[redis.Redis, list[int]]:
    """A Redis client that counts round trips (one send_packed_command each)."""
    client = redis.Redis.from_url(url, decode_responses=decode)
    pool = client.connection_pool
    count = [0]

    class Counting(pool.connection_class):
        def send_packed_command(self, command, check_health=True):
            count[0] += 1
            return super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    client.ping()  # connect (and SELECT) before counting
    count[0] = 0
    return client, count


def test_after_message_costs_one_round_trip_and_one_more_only_when_something_waits(services, standin, clock):
    raw, trips = _counting_client(services.redis.url, decode=False)
    data, data_trips = _counting_client(services.redis.url, decode=True)
    outbound = Outbound(make_queue(raw, services.keys.outbound_queue()), Outbox(data, services.keys, clock),
                        services.outbound.settings, clock=clock)
    outbound.queue.get_redis_server_version()  # RQ asks once per process, not per request
    trips[0] = 0

    sent = outbound.after_message(said(CONSUMER), [Outgoing(MERCHANT, "【消费者】a"), Outgoing(STAFF["food_business"], "b")])
    assert sent == 2 and trips[0] == 1 and data_trips[0] == 0
    window = services.outbound.outbox.window(CONSUMER)
    assert window.at == T0 and window.sent == 0

    services.outbound.outbox.park(CONSUMER, {"id": "x", "to": CONSUMER, "text": "waiting", "kind": "relay"})
    trips[0] = 0
    outbound.after_message(said(CONSUMER, "again"), [])
    assert trips[0] == 2  # window + LLEN (+ enqueue), then the flush job
    assert standin.calls() == []  # never any HTTP inside the request
    funcs = [job.func_name for job in services.outbound.queue.get_jobs()]
    assert funcs.count("bot.outbound.deliver") == 2 and funcs[-1] == "bot.outbound.flush"
    raw.close()
    data.close()


def test_webhook_records_the_window_for_messages_and_window_opening_events_only(services, wechat):
    wechat.text(CONSUMER, "查询")
    assert services.outbound.outbox.window(CONSUMER).at == T0
    wechat.event("oFollower", "subscribe")
    assert services.outbound.outbox.window("oFollower").known
    wechat.event("oLeaver", "unsubscribe")
    assert not services.outbound.outbox.window("oLeaver").known


# --- windows, pending, flush --------------------------------------------------------------------

def test_outside_the_window_messages_wait_and_go_out_oldest_first_on_the_next_message(
        services, worker, standin, wechat, clock):
    wechat.text(CONSUMER, "查询")  # the consumer's window opens
    clock.advance(hours=49)  # ... and closes
    send(services, CONSUMER, "【商家】第一条")
    send(services, CONSUMER, "【商家】第二条")
    assert worker() == []
    assert standin.calls("message/custom/send") == []  # not even tried: we know the window is closed
    assert [m["text"] for m in services.outbound.outbox.pending(CONSUMER)] == ["【商家】第一条", "【商家】第二条"]

    clock.advance(hours=3)
    wechat.text(CONSUMER, "查询")  # the next interaction
    worker()
    got = texts_to(standin, CONSUMER)
    assert len(got) == 2 and got[0].endswith("【商家】第一条") and got[1].endswith("【商家】第二条")
    assert got[0].startswith("（此消息原发于01月17日")  # late: says when it was written
    assert services.outbound.outbox.pending(CONSUMER) == []


def test_inside_the_window_messages_go_out_at_once_and_are_counted(services, worker, standin, wechat, clock):
    wechat.text(CONSUMER, "查询")
    clock.advance(hours=47)
    send(services, CONSUMER, "【商家】还在窗口内")
    assert worker() == [(CONSUMER, "【商家】还在窗口内")]
    assert services.outbound.outbox.window(CONSUMER).sent == 1


@pytest.mark.parametrize("delivery", [{"window_quota": 2}])
def test_the_window_quota_holds_the_rest_until_the_next_interaction(services, worker, standin, wechat, delivery):
    wechat.text(CONSUMER, "查询")
    for i in range(3):
        send(services, CONSUMER, f"【商家】{i}")
    worker()
    assert texts_to(standin, CONSUMER) == ["【商家】0", "【商家】1"]
    assert len(standin.calls("message/custom/send")) == 2
    wechat.text(CONSUMER, "查询")  # a new window, a new quota
    worker()
    assert texts_to(standin, CONSUMER) == ["【商家】0", "【商家】1", "【商家】2"]


@pytest.mark.parametrize("errcode", [45015, 45047])
def test_refused_for_the_window_waits_and_later_messages_queue_behind_it(services, worker, standin, wechat, errcode):
    merchant = "oMerchantNeverSeen"  # no window record: the worker tries, WeChat decides
    standin.inject("message/custom/send", errcode=errcode)
    send(services, merchant, "【消费者】一")
    worker()
    send(services, merchant, "【消费者】二")
    worker()
    assert texts_to(standin, merchant) == []
    assert len(standin.calls("message/custom/send")) == 1  # after the refusal we stop trying
    assert [m["text"] for m in services.outbound.outbox.pending(merchant)] == ["【消费者】一", "【消费者】二"]
    assert standin.templates() == []  # relayed chat has no template: it just waits

    wechat.text(merchant, "查询")
    worker()
    assert texts_to(standin, merchant) == ["【消费者】一", "【消费者】二"]


@pytest.mark.parametrize("client_timeout", [20])
def test_a_refusal_crossing_a_new_message_does_not_hold_the_new_window(
        services, worker, standin, wechat, clock, client_timeout):
    merchant = "oMerchantCrossing"
    standin.inject("message/custom/send", errcode=45015, hang=True)
    send(services, merchant, "【消费者】交叉")

    def meanwhile():
        # once the worker's send is on the wire, the merchant writes; then WeChat answers 45015
        for _ in range(1000):
            if standin.calls("message/custom/send"):
                break
            time.sleep(0.01)
        clock.advance(seconds=5)
        wechat.text(merchant, "查询")  # nothing pending yet: the webhook queues no flush
        standin.release_hangs()

    helper = threading.Thread(target=meanwhile)
    helper.start()
    worker()
    helper.join(timeout=30)
    assert texts_to(standin, merchant) == ["【消费者】交叉"]  # parked, then flushed at once
    window = services.outbound.outbox.window(merchant)
    assert not window.blocked and window.sent == 1


def test_a_message_for_someone_with_pending_messages_queues_behind_them(services, worker, standin, wechat, clock):
    wechat.text(CONSUMER, "查询")
    clock.advance(hours=50)
    send(services, CONSUMER, "【商家】旧")
    worker()
    send(services, CONSUMER, "【调解员】新")  # queued before the consumer writes ...
    wechat.text(CONSUMER, "查询")  # ... and the flush is queued after it
    worker()
    got = texts_to(standin, CONSUMER)
    assert [t.split("\n")[-1] for t in got] == ["【商家】旧", "【调解员】新"]


@pytest.mark.parametrize("delivery", [{"templates": {"result": "TPL_RESULT", "proposal": {
    "id": "TPL_PROPOSAL", "fields": {"thing1": "{title}", "character_string2": "{ticket}", "thing3": "{summary}"}},
    "relay": "TPL_NEVER"}}])
def test_a_configured_template_goes_out_at_once_and_the_full_text_waits(
        services, worker, standin, wechat, clock, delivery):
    wechat.text(CONSUMER, "查询")
    clock.advance(hours=49)
    send(services, CONSUMER, "调解成功！工单 LZ-20270115-0001 已达成协议。", kind="result")
    send(services, CONSUMER, "调解员提出了调解方案：商家退款25元", kind="proposal")
    send(services, CONSUMER, "【商家】聊天内容", kind="relay")
    worker()
    templates = standin.templates()
    assert [t["template_id"] for t in templates] == ["TPL_RESULT", "TPL_PROPOSAL"]
    assert templates[0]["touser"] == CONSUMER
    assert templates[0]["data"]["keyword1"]["value"] == "LZ-20270115-0001"
    assert "回复任意内容" in templates[0]["data"]["remark"]["value"]
    assert templates[1]["data"] == {"thing1": {"value": "有一份调解方案等待您确认"},
                                    "character_string2": {"value": "LZ-20270115-0001"},
                                    "thing3": {"value": "调解员提出了调解方案：商家退款25元"}}
    assert len(services.outbound.outbox.pending(CONSUMER)) == 3  # the full texts wait
    wechat.text(CONSUMER, "查询")
    worker()
    assert len(texts_to(standin, CONSUMER)) == 3


def test_template_settings_from_config():
    settings = DeliverySettings.from_config({"delivery": {"templates": {
        "new_ticket": "TPL_A", "invitation": "", "relay": "TPL_R", "deadline": {"id": "TPL_D", "url": "https://x"}}}})
    assert set(settings.templates) == {"new_ticket", "deadline"}
    assert settings.templates["deadline"]["url"] == "https://x"
    assert settings.templates["new_ticket"]["fields"]["keyword1"] == "{ticket}"
    defaults = DeliverySettings.from_config({})
    assert (defaults.window_seconds, defaults.quota, defaults.templates) == (48 * HOUR, 20, {})


# --- refusals, outages, dead letters ------------------------------------------------------------

@pytest.mark.parametrize("errcode", [40003, 43004, 43101])
def test_refused_recipients_go_straight_to_dead_letters(services, worker, standin, errcode):
    standin.inject("message/custom/send", errcode=errcode)
    send(services, MERCHANT, "【消费者】你好")
    worker()
    assert len(standin.calls("message/custom/send")) == 1  # not retried
    [dead] = services.outbound.outbox.dead_letters()
    assert dead["to"] == MERCHANT and dead["text"] == "【消费者】你好" and dead["reason"].startswith(str(errcode))
    assert services.outbound.outbox.pending(MERCHANT) == []


@pytest.mark.parametrize("fault", [{"http_status": 502}, {"http_status": 503}, {"errcode": -1}, {"hang": True}],
                         ids=["502", "503", "system-busy", "timeout"])
def test_transient_failures_are_retried(services, worker, standin, fault):
    standin.inject("message/custom/send", **fault)
    send(services, MERCHANT, "【消费者】重试")
    worker()
    standin.release_hangs()
    assert (MERCHANT, "【消费者】重试") in standin.sent_texts()  # at least once
    assert services.outbound.outbox.dead_letters() == []


def test_a_connection_error_is_retried_then_kept_as_a_dead_letter(services, standin, worker):
    standin.inject("token", http_status=500, times=None)  # the token endpoint is down too
    send(services, MERCHANT, "【消费者】断网")
    worker()
    assert len(standin.calls("token")) == 3  # the attempt and two retries
    [dead] = services.outbound.outbox.dead_letters()
    assert "token fetch failed" in dead["reason"]


def test_after_the_last_retry_a_message_is_a_dead_letter_that_staff_can_replay(services, worker, standin):
    standin.inject("message/custom/send", http_status=502, times=None)
    send(services, MERCHANT, "【消费者】一直失败")
    worker()
    assert len(standin.calls("message/custom/send")) == 3
    [dead] = services.outbound.outbox.dead_letters()
    assert dead["reason"] == "HTTP 502" and dead["kind"] == "relay" and dead["ticket"] == "LZ-20270115-0001"

    standin.clear_faults()
    assert services.outbound.replay([dead["id"]]) == [dead["id"]]
    assert services.outbound.outbox.dead_letters() == []
    assert worker() == [(MERCHANT, "【消费者】一直失败")]


def test_a_token_refused_on_every_attempt_ends_as_a_dead_letter_with_bounded_fetches(services, worker, standin):
    standin.inject("message/custom/send", errcode=40001, times=None)
    send(services, MERCHANT, "【消费者】令牌")
    worker()
    calls = standin.calls("message/custom/send")
    assert len(calls) == 6  # 3 attempts × (call + one retry after one refresh)
    assert standin.token_fetches == 4  # the first token + one refresh per attempt
    [dead] = services.outbound.outbox.dead_letters()
    assert dead["errcode"] == 40001


def test_api_unauthorized_is_reported_once_loudly_and_the_messages_kept(
        services, worker, standin, caplog, tmp_path, redis_handle, capsys):
    standin.inject("message/custom/send", errcode=48001, times=None)
    send(services, MERCHANT, "【消费者】一")
    send(services, CONSUMER, "【商家】二")
    with caplog.at_level(logging.WARNING, logger="bot.outbound"):
        worker()
    assert len(standin.calls("message/custom/send")) == 2  # one call each, no retries
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "48001" in critical[0].getMessage()
    assert set(services.outbound.outbox.alarms()) == {"message/custom/send"}
    assert sorted(d["to"] for d in services.outbound.outbox.dead_letters()) == sorted([MERCHANT, CONSUMER])

    path = cli_config(tmp_path, redis_handle)
    assert cli_main(["outbox", "status", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "ALARM" in out and "48001" in out and "2 dead letters" in out

    standin.clear_faults()  # the account got the permission back
    assert cli_main(["outbox", "replay", "--all", "--config", path]) == 0
    worker()
    assert sorted(standin.sent_texts()) == sorted([(MERCHANT, "【消费者】一"), (CONSUMER, "【商家】二")])
    assert services.outbound.outbox.alarms() == {}  # a success clears the alarm


def test_the_token_endpoint_refusing_the_account_is_reported_once_and_nothing_lost(
        services, worker, standin, caplog):
    standin.inject("token", errcode=40164, errmsg="invalid ip 1.2.3.4, not in whitelist", times=None)
    send(services, MERCHANT, "【消费者】白名单")
    send(services, CONSUMER, "【商家】白名单")
    with caplog.at_level(logging.WARNING, logger="bot.outbound"):
        worker()
    assert len(standin.calls("token")) == 2  # one fetch per message, no retries: only staff can fix it
    assert [r.levelno for r in caplog.records].count(logging.CRITICAL) == 1
    assert services.outbound.outbox.alarms()["token"]["errcode"] == 40164
    assert len(services.outbound.outbox.dead_letters()) == 2

    standin.clear_faults()  # the server's IP was added to the whitelist
    services.outbound.replay(None)
    worker()
    assert len(standin.sent_texts()) == 2 and services.outbound.outbox.alarms() == {}


# --- the staff CLI ----------------------------------------------------------------------------

def cli_config(tmp_path, redis_handle) -> str:
    path = tmp_path / "cli-config.yaml"
    path.write_text(yaml.safe_dump({"redis": {"url": redis_handle.url, "namespace": "med"},
                                    "data_dir": str(tmp_path)}), encoding="utf-8")
    return str(path)


def test_outbox_cli_lists_replays_and_drops_dead_letters(services, worker, standin, tmp_path, redis_handle, capsys):
    path = cli_config(tmp_path, redis_handle)
    assert cli_main(["outbox", "list", "--config", path]) == 0
    assert "no dead letters" in capsys.readouterr().out

    standin.inject("message/custom/send", errcode=43004, times=2)
    send(services, MERCHANT, "【消费者】退订了")
    send(services, CONSUMER, "【商家】也退订了")
    worker()
    assert cli_main(["outbox", "list", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "43004" in out and "【消费者】退订了" in out and "2 dead letters" in out
    by_person = {d["to"]: d["id"] for d in services.outbound.outbox.dead_letters()}
    first, second = by_person[MERCHANT], by_person[CONSUMER]

    assert cli_main(["outbox", "drop", first, "--config", path]) == 0
    assert cli_main(["outbox", "drop", first, "--config", path]) == 1
    assert cli_main(["outbox", "replay", "--config", path]) == 2  # an id or --all
    assert cli_main(["outbox", "replay", second, "--config", path]) == 0
    assert f"replayed 1: {second}" in capsys.readouterr().out
    worker()
    assert standin.sent_texts() == [(CONSUMER, "【商家】也退订了")]
    assert services.outbound.outbox.dead_letters() == []


def test_outbox_status_shows_pending_messages(services, worker, standin, wechat, clock, tmp_path, redis_handle,
                                             capsys):
    wechat.text(CONSUMER, "查询")
    clock.advance(hours=60)
    send(services, CONSUMER, "【商家】等你回来")
    worker()
    assert cli_main(["outbox", "status", "--config", cli_config(tmp_path, redis_handle)]) == 0
    out = capsys.readouterr().out
    assert "pending 1 messages for 1 people" in out and f"{CONSUMER}: 1" in out and "ALARM" not in out


def test_delivery_key_strings_are_stable():
    from storage.keys import Keys

    k = Keys("med")
    assert k.user_window("oA") == "med:user:oA:window"
    assert k.user_pending("oA") == "med:user:oA:pending"
    assert k.user_delivery_lock("oA") == "med:user:oA:delivery:lock"
    assert k.dead_letters() == "med:outbox:dead"
    assert k.delivery_alarm() == "med:outbox:alarm"
    assert k.media("MEDIA_1") == "med:media:MEDIA_1"

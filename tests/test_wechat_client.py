"""BureauWeChatClient against the stand-in over real HTTP: one token refresher for all threads and
processes, one refresh + one retry on a rejected token (never wechatpy's unbounded loop), and a
timeout on every call, the token fetch included."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import requests
from wechatpy.exceptions import WeChatClientException

from bot.wechat_client import BureauWeChatClient
from tests.conftest import REPO

APPID, SECRET = "wxtestappid", "testsecret"


def make_client(services, standin, timeout: float = 3) -> BureauWeChatClient:
    return BureauWeChatClient(APPID, SECRET, services.redis.data, services.keys, standin.base_url, timeout=timeout)


def send(client: BureauWeChatClient, to: str = "oUser", text: str = "hi"):
    return client.call_with_token_retry(lambda: client.message.send_text(to, text))


def tokens_used(standin, endpoint: str = "message/custom/send") -> list[str]:
    return [c["params"].get("access_token") for c in standin.calls(endpoint)]


def test_threads_with_an_empty_redis_fetch_exactly_one_token(services, standin):
    standin.inject("token", delay=0.3)  # the first fetch is slow: everyone else arrives meanwhile
    clients = [make_client(services, standin) for _ in range(8)]  # as if 8 processes
    barrier = threading.Barrier(len(clients))
    got: list[str] = []

    def run(client):
        barrier.wait()
        got.append(client.access_token)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert standin.token_fetches == 1
    assert got == ["TOKEN_1"] * len(clients)


CHILD = """
import sys, redis
from bot.wechat_client import BureauWeChatClient
from storage.keys import Keys
url, base = sys.argv[1], sys.argv[2]
client = BureauWeChatClient("wxtestappid", "testsecret", redis.Redis.from_url(url, decode_responses=True),
                            Keys("med"), base, timeout=10)
print("ready", flush=True)
sys.stdin.readline()
print(client.access_token, flush=True)
"""


def test_processes_with_an_empty_redis_fetch_exactly_one_token(services, standin, redis_handle):
    standin.inject("token", delay=0.5)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, redis_handle.url, standin.base_url], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        for p in procs:  # everyone has imported and built its client: now start them together
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        tokens = [p.communicate(timeout=60)[0].strip() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert all(p.returncode == 0 for p in procs)
    assert standin.token_fetches == 1
    assert tokens == ["TOKEN_1"] * 3


def test_token_is_shared_through_redis_under_the_namespace(services, standin):
    send(make_client(services, standin))
    stored = services.redis.data.get(f"med:wechat:{APPID}_access_token")
    assert json.loads(stored) == "TOKEN_1"
    send(make_client(services, standin))  # a second "process" reuses it
    assert standin.token_fetches == 1


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_rejected_token_is_refreshed_once_and_the_call_retried_once(services, standin, errcode):
    client = make_client(services, standin)
    standin.inject("message/custom/send", errcode=errcode, times=1)
    assert send(client)["errcode"] == 0
    assert standin.token_fetches == 2
    first, second = tokens_used(standin)
    assert (first, second) == ("TOKEN_1", "TOKEN_2")  # never "refreshed" to the token just refused
    assert standin.sent_texts() == [("oUser", "hi")]


def test_always_40001_gives_up_after_one_refresh_without_recursion(services, standin):
    client = make_client(services, standin)
    standin.inject("message/custom/send", errcode=40001, times=None)
    with pytest.raises(WeChatClientException) as caught:
        send(client)
    assert caught.value.errcode == 40001
    assert standin.token_fetches == 2  # the first token and exactly one refresh
    assert len(standin.calls("message/custom/send")) == 2  # the call and exactly one retry


def test_expired_token_seen_by_many_processes_is_refreshed_once(services, standin):
    clients = [make_client(services, standin) for _ in range(6)]
    send(clients[0])
    standin.expire_tokens()  # every process's next call gets 42001
    standin.clear()
    standin.inject("token", delay=0.3)
    barrier = threading.Barrier(len(clients))
    errors: list[BaseException] = []

    def run(client):
        barrier.wait()
        try:
            send(client)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert standin.token_fetches == 1
    assert len(standin.sent_texts()) == len(clients)


def test_token_fetch_has_a_timeout_and_releases_the_lock(services, standin):
    client = make_client(services, standin, timeout=0.5)
    standin.inject("token", hang=True)
    with pytest.raises(WeChatClientException, match="token fetch failed"):
        client.access_token
    standin.release_hangs()
    # the refresher's lock was released: the next caller fetches at once
    assert send(make_client(services, standin, timeout=0.5))["errcode"] == 0


@pytest.mark.parametrize("endpoint,call", [
    ("message/custom/send", lambda c: c.message.send_text("oUser", "hi")),
    ("message/template/send", lambda c: c.message.send_template("oUser", "TPL", {"first": {"value": "x"}})),
    ("media/get", lambda c: c.media.download("MEDIA_1")),
])
def test_every_api_call_has_a_timeout(services, standin, endpoint, call):
    client = make_client(services, standin, timeout=0.5)
    client.access_token  # the token itself comes quickly
    standin.inject(endpoint, hang=True)
    with pytest.raises(requests.Timeout):
        client.call_with_token_retry(lambda: call(client))
    standin.release_hangs()


def test_http_errors_and_system_busy_surface_as_wechat_exceptions(services, standin):
    client = make_client(services, standin)
    standin.inject("message/custom/send", http_status=502)
    with pytest.raises(WeChatClientException) as caught:
        send(client)
    assert caught.value.errcode is None
    standin.inject("message/custom/send", errcode=-1)
    with pytest.raises(WeChatClientException) as caught:
        send(client)
    assert caught.value.errcode == -1
    assert standin.token_fetches == 1  # neither is a token problem

"""The WeChat API stand-in, driven by the real wechatpy client over loopback HTTP (no mocks)."""

import os
import subprocess
import sys
import threading
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # plain `pytest` puts tests/, not the repo root, on sys.path
    sys.path.insert(0, ROOT)

from wechatpy import WeChatClient  # noqa: E402
from wechatpy.exceptions import WeChatClientException  # noqa: E402

from bot.standin import RemoteStandIn, StandIn, fake_jpeg  # noqa: E402

APPID, SECRET = "wxtestappid", "testsecret"
USER = "oUSER_OPENID_0001"


class StandInClient(WeChatClient):
    """wechatpy 1.8.18 hard-codes https://api.weixin.qq.com/cgi-bin/token; fetch from our base."""

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


@pytest.fixture
def standin():
    with StandIn(appid=APPID, secret=SECRET) as s:
        yield s


@pytest.fixture
def make_client(standin):
    """Build wechatpy clients aimed at the stand-in; their HTTP sessions are closed afterwards."""
    made = []

    def make(secret=SECRET, timeout=3, auto_retry=False):
        client = StandInClient(APPID, secret, timeout=timeout, auto_retry=auto_retry)
        client.API_BASE_URL = standin.base_url
        client._http.trust_env = False  # never route loopback through an environment proxy
        made.append(client)
        return client

    yield make
    for client in made:
        client._http.close()


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False
        yield session


def test_token_fetch_and_send_text_recorded(standin, make_client):
    client = make_client()
    assert client.message.send_text(USER, "已受理，编号 LZ-1 😀") == {"errcode": 0, "errmsg": "ok"}

    assert standin.token_fetches == 1
    assert standin.sent_texts() == [(USER, "已受理，编号 LZ-1 😀")]
    assert standin.sent_texts(touser="someone-else") == []
    (call,) = standin.calls("message/custom/send")
    assert call["params"]["access_token"] == "TOKEN_1"
    assert call["body"] == {"touser": USER, "msgtype": "text", "text": {"content": "已受理，编号 LZ-1 😀"}}
    assert call["response"] == {"errcode": 0, "errmsg": "ok"}


def test_injected_errcode_once_then_ok(standin, make_client):
    client = make_client()
    standin.inject("message/custom/send", errcode=45015)

    with pytest.raises(WeChatClientException) as exc:
        client.message.send_text(USER, "first")
    assert exc.value.errcode == 45015
    assert exc.value.errmsg == "response out of time limit or subscription is canceled"

    client.message.send_text(USER, "second")
    # Only what WeChat accepted counts as sent.
    assert standin.sent_texts() == [(USER, "second")]
    assert [c["response"]["errcode"] for c in standin.calls("message/custom/send")] == [45015, 0]


def test_faults_are_consumed_in_order(standin, make_client):
    client = make_client()
    standin.inject("message/custom/send", errcode=48001)
    standin.inject("message/custom/send", errcode=45047, times=2)
    codes = []
    for i in range(4):
        try:
            client.message.send_text(USER, str(i))
            codes.append(0)
        except WeChatClientException as exc:
            codes.append(exc.errcode)
    assert codes == [48001, 45047, 45047, 0]
    assert standin.pending_faults() == {}


def test_forever_fault_until_cleared(standin, make_client):
    client = make_client()
    standin.inject("/cgi-bin/message/custom/send", errcode=-1, times=None)
    for _ in range(3):
        with pytest.raises(WeChatClientException):
            client.message.send_text(USER, "x")
    standin.clear()
    client.message.send_text(USER, "after clear")
    assert standin.sent_texts() == [(USER, "after clear")]


def test_40001_with_auto_retry_refetches_token(standin, make_client):
    client = make_client(auto_retry=True)
    client.fetch_access_token()
    standin.inject("message/custom/send", errcode=40001)

    client.message.send_text(USER, "retried")

    assert standin.token_fetches == 2
    assert [c["params"]["access_token"] for c in standin.calls("message/custom/send")] == ["TOKEN_1", "TOKEN_2"]
    assert standin.sent_texts() == [(USER, "retried")]


def test_token_rotation_keeps_only_previous_token(standin, http):
    def fetch():
        return http.get(standin.base_url + "token", params={
            "grant_type": "client_credential", "appid": APPID, "secret": SECRET}).json()

    assert [fetch()["access_token"] for _ in range(3)] == ["TOKEN_1", "TOKEN_2", "TOKEN_3"]
    assert fetch()["expires_in"] == 7200

    def send(params):
        return http.post(standin.base_url + "message/custom/send", params=params,
                         json={"touser": USER, "msgtype": "text", "text": {"content": "hi"}}).json()

    assert send({"access_token": "TOKEN_4"})["errcode"] == 0
    assert send({"access_token": "TOKEN_3"})["errcode"] == 0  # previous token: grace period
    assert send({"access_token": "TOKEN_2"}) == {
        "errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
    assert send({"access_token": "bogus"})["errcode"] == 40001
    assert send({})["errcode"] == 41001
    standin.expire_tokens()
    assert send({"access_token": "TOKEN_4"})["errcode"] == 42001


def test_wrong_credentials(standin, make_client):
    with pytest.raises(WeChatClientException) as exc:
        make_client(secret="wrong").message.send_text(USER, "x")
    assert (exc.value.errcode, exc.value.errmsg) == (40125, "invalid appsecret")

    wrong_appid = StandInClient("wxother", SECRET)
    wrong_appid.API_BASE_URL = standin.base_url
    wrong_appid._http.trust_env = False
    with pytest.raises(WeChatClientException) as exc:
        wrong_appid.fetch_access_token()
    wrong_appid._http.close()
    assert exc.value.errcode == 40013
    assert standin.token_fetches == 0
    assert standin.sent_texts() == []


def test_http_502_raises_without_errcode(standin, make_client):
    client = make_client()
    client.fetch_access_token()
    standin.inject("message/custom/send", http_status=502)

    with pytest.raises(WeChatClientException) as exc:
        client.message.send_text(USER, "x")
    assert exc.value.errcode is None
    assert exc.value.response.status_code == 502
    assert standin.sent_texts() == []


def test_delay_beyond_client_timeout_times_out(standin, make_client):
    client = make_client(timeout=0.3)
    client.fetch_access_token()
    standin.inject("message/custom/send", delay=30)

    with pytest.raises(requests.exceptions.Timeout):
        client.message.send_text(USER, "slow")
    # The fixture's stop() cuts the 30 s delay short; the test does not wait for it.


def test_short_delay_still_answers_normally(standin, make_client):
    client = make_client()
    standin.inject("message/custom/send", delay=0.05)
    client.message.send_text(USER, "a bit slow")
    assert standin.sent_texts() == [(USER, "a bit slow")]
    assert standin.calls("message/custom/send")[0]["fault"]["delay"] == 0.05


def _wait_for(predicate, limit=2.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _send_in_thread(client, content):
    outcome = {}

    def run():
        try:
            outcome["result"] = client.message.send_text(USER, content)
        except Exception as exc:  # noqa: BLE001 - the test inspects whatever happened
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_hang_is_released_by_stop(standin, make_client):
    client = make_client(timeout=30)
    client.fetch_access_token()
    standin.inject("message/custom/send", hang=True)
    thread, outcome = _send_in_thread(client, "stuck")
    # The call is recorded on arrival, with no status while it hangs.
    _wait_for(lambda: standin.calls("message/custom/send"))
    assert standin.calls("message/custom/send")[0]["status"] is None

    standin.stop()
    thread.join(timeout=3)

    assert not thread.is_alive()
    assert isinstance(outcome["error"], WeChatClientException)
    assert outcome["error"].response.status_code == 503
    assert standin.sent_texts() == []


def test_hang_released_then_delivered(standin, make_client):
    client = make_client(timeout=30)
    client.fetch_access_token()
    standin.inject("message/custom/send", hang=True)
    thread, outcome = _send_in_thread(client, "late but delivered")
    _wait_for(lambda: standin.calls("message/custom/send"))

    standin.release_hangs()
    thread.join(timeout=3)

    assert outcome == {"result": {"errcode": 0, "errmsg": "ok"}}
    assert standin.sent_texts() == [(USER, "late but delivered")]


def test_media_download(standin, make_client, http):
    client = make_client()
    photo = standin.add_media("MEDIA_PHOTO_1")
    assert photo == fake_jpeg("MEDIA_PHOTO_1") and photo.startswith(b"\xff\xd8")

    res = client.media.download("MEDIA_PHOTO_1")
    assert res.content == photo
    assert res.headers["Content-Type"] == "image/jpeg"

    with pytest.raises(WeChatClientException) as exc:
        client.media.download("NO_SUCH_MEDIA")
    assert (exc.value.errcode, exc.value.errmsg) == (40007, "invalid media_id")
    raw = http.get(standin.base_url + "media/get",
                   params={"access_token": standin.current_token, "media_id": "NO_SUCH_MEDIA"})
    assert raw.headers["Content-Type"].startswith("text/plain")


def test_any_media_mode_serves_every_id():
    with StandIn(appid=APPID, secret=SECRET, any_media=True) as s, requests.Session() as http:
        http.trust_env = False
        token = http.get(s.base_url + "token", params={
            "grant_type": "client_credential", "appid": APPID, "secret": SECRET}).json()["access_token"]
        res = http.get(s.base_url + "media/get", params={"access_token": token, "media_id": "ANY"})
        assert res.content == fake_jpeg("ANY")


def test_template_send_recorded(standin, make_client):
    client = make_client()
    data = {"first": {"value": "您的投诉已受理"}, "keyword1": {"value": "LZ-20261203-0001"}}
    result = client.message.send_template(USER, "TEMPLATE_ID_1", data, url="https://example.org/t/1")

    assert result["errcode"] == 0 and isinstance(result["msgid"], int)
    (template,) = standin.templates()
    assert template["touser"] == USER
    assert template["template_id"] == "TEMPLATE_ID_1"
    assert template["data"] == data
    assert template["msgid"] == result["msgid"]


def test_qrcode_create_recorded(standin, make_client):
    client = make_client()
    body = {"expire_seconds": 2592000, "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": "case:2024-0001"}}}
    result = client.qrcode.create(body)

    assert result["expire_seconds"] == 2592000
    assert result["url"].startswith("http://weixin.qq.com/q/")
    assert standin.calls("qrcode/create")[0]["body"] == body
    assert standin.qrcodes()[0]["ticket"] == result["ticket"]


def test_concurrent_sends_all_recorded(standin, make_client):
    clients = [make_client() for _ in range(4)]
    for c in clients:
        c.session.set(c.access_token_key, "TOKEN_1")  # shared token, as with a Redis session
    standin_token = make_client().fetch_access_token()["access_token"]
    assert standin_token == "TOKEN_1"

    threads = [threading.Thread(target=c.message.send_text, args=(USER, f"m{i}-{j}"))
               for i, c in enumerate(clients) for j in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(content for _, content in standin.sent_texts()) == sorted(
        f"m{i}-{j}" for i in range(4) for j in range(5))


def test_inject_rejects_unknown_endpoint(standin):
    with pytest.raises(ValueError):
        standin.inject("message/custom_send", errcode=45015)
    with pytest.raises(ValueError):
        standin.inject("token")  # nothing to do


def test_http_control_endpoints(standin, make_client, http):
    client = make_client()
    control = standin.control_url

    ok = http.post(control + "faults", json={"endpoint": "message/custom/send", "errcode": 45047})
    assert ok.json()["ok"] is True
    assert http.post(control + "faults", json={"endpoint": "nope", "errcode": 1}).status_code == 400
    assert http.get(control + "faults").json()["message/custom/send"][0]["errcode"] == 45047

    with pytest.raises(WeChatClientException) as exc:
        client.message.send_text(USER, "blocked")
    assert exc.value.errcode == 45047
    client.message.send_text(USER, "through")

    assert http.get(control + "sent").json() == [{"touser": USER, "content": "through"}]
    calls = http.get(control + "calls", params={"endpoint": "message/custom/send"}).json()
    assert [c["response"]["errcode"] for c in calls] == [45047, 0]
    assert http.get(control + "status").json()["token_fetches"] == 1

    assert http.post(control + "reset").json() == {"ok": True}
    assert http.get(control + "calls").json() == []
    assert standin.sent_texts() == []


def test_remote_standin_helper(standin, make_client):
    client = make_client()
    with RemoteStandIn(standin.base_url) as remote:
        remote.inject("message/custom/send", errcode=43004)
        remote.add_media("M1", b"\xff\xd8remote")
        with pytest.raises(WeChatClientException):
            client.message.send_text(USER, "x")
        client.message.send_text(USER, "y")
        assert client.media.download("M1").content == b"\xff\xd8remote"

        assert remote.sent_texts() == [(USER, "y")]
        assert remote.token_fetches == 1
        assert len(remote.calls("message/custom/send")) == 2
        remote.clear()
        assert remote.calls() == []


def test_main_serves_in_foreground():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.standin", "--port", "0", "--appid", APPID, "--secret", SECRET],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        base_url = line.split(" at ", 1)[1].split()[0]
        with requests.Session() as http:
            http.trust_env = False
            res = http.get(base_url + "token", params={
                "grant_type": "client_credential", "appid": APPID, "secret": SECRET})
            assert res.json()["access_token"] == "TOKEN_1"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=5)
    assert proc.returncode == 0
    # One log line per call, and no werkzeug access-log lines.
    assert "GET token -> 200" in err
    assert "HTTP/1.1" not in err

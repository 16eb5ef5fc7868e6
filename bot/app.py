"""Application factory: wires config, Redis, router, WeChat crypto and delivery queue.

``create_app`` is what gunicorn imports (``gunicorn 'bot.app:create_app()'`` with
``--preload`` so every worker shares the jieba dictionary loaded once). Per-app objects live
in ``app.extensions["bot"]``, never in module globals.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from flask import Flask

from bot.clocks import Clocks, make_clocks
from bot.crypto import EdgeCrypto
from bot.config import ConfigError, data_dir, load_config
from bot.outbound import DeliverySettings, Outbound, make_queue
from flows.routing import Router
from handlers.base import Directory
from storage.connection import RedisHandle, connect
from storage.keys import Keys
from storage.audit import Audit
from storage.outbox import Outbox
from storage.staff import StaffStore
from storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: dict[str, Any]
    redis: RedisHandle
    keys: Keys
    store: Store
    router: Router
    directory: Directory
    outbound: Outbound
    crypto: EdgeCrypto | None
    staff: StaffStore  # staff records and WeChat binding (issue 4)
    audit: Audit  # who did what, when (issue 4)
    clock: Callable[[], float] = time.time
    clocks: Clocks | None = None  # a ticket's deadlines as RQ scheduled jobs (issue 5)


def build_services(config: dict[str, Any], redis_handle: RedisHandle | None = None,
                   router: Router | None = None, clock: Callable[[], float] = time.time) -> Services:
    handle = redis_handle or connect(config["redis"]["url"], data_dir(config))
    keys = Keys(config["redis"].get("namespace") or "med")
    wechat = config["wechat"]
    crypto = None
    if wechat.get("encoding_aes_key"):
        crypto = EdgeCrypto(wechat["token"], wechat["appid"], wechat["encoding_aes_key"],
                            wechat.get("previous_encoding_aes_key") or "")
    staff = StaffStore(handle.data, keys, clock=clock)
    return Services(
        config=config,
        redis=handle,
        keys=keys,
        store=Store(handle.data, keys, clock=clock),
        router=router or _router(config),
        directory=Directory(config.get("units") or [], config["routing"].get("fallback_unit", ""), staff),
        outbound=Outbound(make_queue(handle.raw, keys.outbound_queue()), Outbox(handle.data, keys, clock=clock),
                          DeliverySettings.from_config(config), clock=clock),
        crypto=crypto,
        staff=staff,
        audit=Audit(handle.data, keys, clock=clock),
        clock=clock,
        clocks=make_clocks(handle.raw, keys, clock),
    )


def _router(config: dict[str, Any]) -> Router:
    try:
        return Router.from_config(config)
    except ValueError as exc:  # the table names an unknown unit, a duplicate keyword, ...
        raise ConfigError(f"routing table: {exc}") from exc


def create_app(config: dict[str, Any] | str | None = None, services: Services | None = None) -> Flask:
    """``config``: a loaded config dict, a YAML path, or None (BOT_CONFIG / defaults)."""
    if services is None:
        if not isinstance(config, dict):
            config = load_config(config)
        services = build_services(config)
    app = Flask(__name__)
    app.extensions["bot"] = services

    from bot.dashboard import bp as dashboard_bp
    from bot.webhook import bp as webhook_bp

    app.register_blueprint(webhook_bp)
    app.register_blueprint(dashboard_bp)

    @app.get("/healthz")
    def healthz():
        services.redis.data.ping()
        return {"ok": True}

    return app

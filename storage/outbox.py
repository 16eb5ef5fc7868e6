"""Delivery state in Redis: customer-service windows, pending messages, dead letters, alarms.

- **Window** (``user:<openid>:window``, a HASH): ``at`` = when the person last interacted with
  the account (set by the webhook), ``sent`` = customer-service messages sent to them since,
  ``blocked`` = the errcode WeChat answered (45015/45047) since then, ``n`` = interactions
  counted so far (a refusal only blocks the window it was about). No record = we do not know
  (staff who never wrote to the bot, records older than the TTL): the worker tries and WeChat's
  answer decides.
- **Pending** (``user:<openid>:pending``, a LIST of JSON messages, oldest first): what could
  not be sent yet. Appenders ``RPUSH`` at the tail; only the holder of the person's delivery
  lock reads and pops the head, so a message leaves the list only after it was sent (or moved
  to the dead letters).
- **Dead letters** (``outbox:dead``, a HASH id → JSON): messages and evidence downloads that
  will not go out on their own; staff list, replay or drop them (``python -m bot outbox``).
- **Alarm** (``outbox:alarm``, a HASH API path → JSON): 48001 "api unauthorized" (or the token
  endpoint refusing the appid/secret/IP), kept until a call to that API succeeds again.

Like the Store, every method is one round trip; writes that belong together take ``pipeline``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import redis

from storage.keys import Keys


@dataclass(frozen=True)
class Window:
    """One person's customer-service window as recorded; ``at`` None = no record."""

    at: float | None = None
    sent: int = 0
    blocked: str = ""
    interactions: int = 0  # how many windows were opened (so a refusal is matched to its window)

    @property
    def known(self) -> bool:
        return self.at is not None

    def closed(self, now: float, seconds: float, quota: int) -> bool:
        """True when a customer-service message would certainly be refused; an unknown
        window is not closed (try, and let WeChat's 45015 decide)."""
        if self.blocked:
            return True
        if self.at is None:
            return False
        return now - self.at >= seconds or self.sent >= quota

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "Window":
        at = fields.get("at")
        return cls(at=float(at) if at else None, sent=int(fields.get("sent") or 0),
                   blocked=fields.get("blocked") or "", interactions=int(fields.get("n") or 0))


_BLOCK_IF_UNCHANGED = """
local n = redis.call('HGET', KEYS[1], 'n') or '0'
if n ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'blocked', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class Outbox:
    def __init__(self, r: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time):
        self.r = r
        self.keys = keys
        self.clock = clock
        self._block = r.register_script(_BLOCK_IF_UNCHANGED)

    # --- windows -----------------------------------------------------------------------------
    def record_interaction(self, openid: str, at: float, ttl: int, pipeline: Any = None) -> None:
        """The person wrote to the account (or followed / scanned / clicked): a new window."""
        target = pipeline if pipeline is not None else self.r
        key = self.keys.user_window(openid)
        target.hset(key, mapping={"at": repr(float(at)), "sent": 0})
        target.hincrby(key, "n", 1)
        target.hdel(key, "blocked")
        target.expire(key, ttl)

    def window(self, openid: str) -> Window:
        return Window.from_fields(self.r.hgetall(self.keys.user_window(openid)))

    def snapshot(self, openid: str) -> tuple[Window, int]:
        """The window and how many messages already wait for this person, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.keys.user_window(openid))
        pipe.llen(self.keys.user_pending(openid))
        fields, waiting = pipe.execute()
        return Window.from_fields(fields), int(waiting)

    def block_window(self, openid: str, errcode: int, ttl: int, seen: Window) -> bool:
        """WeChat refused (45015 window over / 45047 quota used): hold everything until the
        person's next interaction clears this. Only if no interaction came in since ``seen`` was
        read: WeChat's answer is about the old window, not a newer one. True when blocked."""
        return bool(self._block(keys=[self.keys.user_window(openid)],
                                args=[str(seen.interactions), str(errcode), int(ttl)]))

    # --- pending -----------------------------------------------------------------------------
    def pending_count(self, openid: str, pipeline: Any = None) -> int | Any:
        return (pipeline if pipeline is not None else self.r).llen(self.keys.user_pending(openid))

    def park(self, openid: str, message: dict[str, Any]) -> int:
        """Append a message to the person's pending list; returns how many now wait."""
        return self.r.rpush(self.keys.user_pending(openid), json.dumps(message, ensure_ascii=False))

    def pending_head(self, openid: str) -> dict[str, Any] | None:
        raw = self.r.lindex(self.keys.user_pending(openid), 0)
        return json.loads(raw) if raw else None

    def pop_head(self, openid: str, pipeline: Any = None) -> None:
        """Remove the oldest pending message (caller holds the person's delivery lock)."""
        (pipeline if pipeline is not None else self.r).lpop(self.keys.user_pending(openid))

    def pending(self, openid: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.r.lrange(self.keys.user_pending(openid), 0, -1)]

    def pending_by_person(self) -> dict[str, int]:
        """openid → number of waiting messages, for everyone who has some (staff status view)."""
        prefix, suffix = self.keys.user_pending("\x00").split("\x00")
        keys = list(self.r.scan_iter(match=f"{prefix}*{suffix}", count=1000))
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        counts = pipe.execute() if keys else []
        return {key[len(prefix):-len(suffix)]: n for key, n in zip(keys, counts) if n}

    def delivery_lock(self, openid: str, timeout: float) -> redis.lock.Lock:
        """One sender per recipient, so pending messages go out once and oldest first."""
        return self.r.lock(self.keys.user_delivery_lock(openid), timeout=timeout, blocking_timeout=timeout)

    # --- sending bookkeeping -------------------------------------------------------------------
    def sent(self, openid: str, api: str, counted: bool, pop_pending: bool = False) -> None:
        """A call to ``api`` succeeded: count it against the window (when the window is known),
        clear that API's alarm, and drop the pending head it came from — one round trip."""
        pipe = self.r.pipeline(transaction=True)
        if pop_pending:
            self.pop_head(openid, pipeline=pipe)
        if counted:
            pipe.hincrby(self.keys.user_window(openid), "sent", 1)
        pipe.hdel(self.keys.delivery_alarm(), api, "token")  # a call got through: the token is fine too
        pipe.execute()

    # --- dead letters ------------------------------------------------------------------------
    def add_dead(self, record: dict[str, Any], pipeline: Any = None) -> str:
        record = dict(record, dead_at=round(self.clock(), 3))
        (pipeline if pipeline is not None else self.r).hset(self.keys.dead_letters(), record["id"],
                                  json.dumps(record, ensure_ascii=False))
        return record["id"]

    def kill_head(self, openid: str, record: dict[str, Any]) -> None:
        """Move the oldest pending message to the dead letters (one MULTI/EXEC)."""
        pipe = self.r.pipeline(transaction=True)
        self.pop_head(openid, pipeline=pipe)
        self.add_dead(record, pipeline=pipe)
        pipe.execute()

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter, oldest first."""
        records = [json.loads(v) for v in self.r.hvals(self.keys.dead_letters())]
        return sorted(records, key=lambda rec: (rec.get("dead_at", 0), rec.get("id", "")))

    def dead_letter(self, record_id: str) -> dict[str, Any] | None:
        raw = self.r.hget(self.keys.dead_letters(), record_id)
        return json.loads(raw) if raw else None

    def remove_dead(self, *record_ids: str, pipeline: Any = None) -> int | Any:
        if not record_ids:
            return 0
        return (pipeline if pipeline is not None else self.r).hdel(self.keys.dead_letters(), *record_ids)

    # --- alarm (48001) -----------------------------------------------------------------------
    def raise_alarm(self, api: str, errcode: int | None, errmsg: str, detail: str = "") -> bool:
        """Record that ``api`` is refused (48001, or the token endpoint refusing the account); True
        only the first time, so the caller reports it loudly once."""
        record = {"api": api, "errcode": errcode, "errmsg": errmsg, "detail": detail,
                  "at": round(self.clock(), 3)}
        return bool(self.r.hsetnx(self.keys.delivery_alarm(), api, json.dumps(record, ensure_ascii=False)))

    def alarms(self) -> dict[str, dict[str, Any]]:
        return {api: json.loads(v) for api, v in self.r.hgetall(self.keys.delivery_alarm()).items()}

    def clear_alarm(self, *apis: str) -> None:
        self.r.hdel(self.keys.delivery_alarm(), *apis)

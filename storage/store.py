"""The Redis repository: tickets, people, transcripts, invitations, delivery de-duplication.

Every method is one round trip or one pipeline; writes that belong together take a
``pipeline`` so a handler commits ticket, person and transcript in one MULTI/EXEC.
Nothing here knows WeChat or Flask; flows' dataclasses go in and come out.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import redis

from bot import defaults
from flows.mediation import Ticket
from storage.keys import Keys

CHINA = timezone(timedelta(hours=8))
PENDING = "\x00pending"

# Lock and read in one round trip; the lock is a token so only its owner can release it.
LOCK_AND_READ = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('HGETALL', KEYS[2])}
end
return {0, {}}
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""  # dedupe marker while the first delivery is still being handled


class Store:
    def __init__(self, r: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time):
        self.r = r
        self.keys = keys
        self.clock = clock

    # --- WeChat re-delivery ------------------------------------------------------------------
    def claim_delivery(self, fingerprint: str, ttl: int = defaults.DEDUPE_TTL_SECONDS) -> str | None:
        """None when this delivery is new (and now claimed); else the reply cached for it
        (``PENDING`` while the first delivery is still running)."""
        key = self.keys.dedupe(fingerprint)
        pipe = self.r.pipeline(transaction=False)
        pipe.set(key, PENDING, nx=True, ex=ttl)
        pipe.get(key)
        claimed, value = pipe.execute()
        return None if claimed else value

    def remember_reply(self, fingerprint: str, reply: str, ttl: int = defaults.DEDUPE_TTL_SECONDS,
                       pipeline: Any = None) -> None:
        (pipeline if pipeline is not None else self.r).set(self.keys.dedupe(fingerprint), reply, ex=ttl)

    def forget_delivery(self, fingerprint: str) -> None:
        """The handler failed: let WeChat's retry run it again instead of replaying nothing."""
        self.r.delete(self.keys.dedupe(fingerprint))

    # --- people ------------------------------------------------------------------------------
    def load_user(self, openid: str) -> dict[str, str]:
        return self.r.hgetall(self.keys.user(openid))

    def save_user(self, openid: str, fields: dict[str, str], pipeline: Any = None) -> None:
        target = pipeline if pipeline is not None else self.r
        keep = {k: v for k, v in fields.items() if v not in (None, "")}
        drop = [k for k, v in fields.items() if v in (None, "")]
        if keep:
            target.hset(self.keys.user(openid), mapping=keep)
        if drop:
            target.hdel(self.keys.user(openid), *drop)

    # --- one round trip locks -----------------------------------------------------------------
    def lock_and_read(self, lock_key: str, hash_key: str, timeout: float = defaults.LOCK_TIMEOUT_SECONDS,
                      wait: float = defaults.LOCK_WAIT_SECONDS) -> tuple[str | None, dict[str, str]]:
        """Take ``lock_key`` and read ``hash_key`` in one round trip (the read happens only
        once the lock is ours). Returns (token, fields); token is None if the lock stayed busy
        for ``wait`` seconds. Release with ``release`` — inside the write's MULTI when possible."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait
        pause = 0.002
        while True:
            got, flat = self.r.eval(LOCK_AND_READ, 2, lock_key, hash_key, token, int(timeout * 1000))
            if got:
                return token, dict(zip(flat[::2], flat[1::2]))
            if time.monotonic() >= deadline:
                return None, {}
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def release(self, lock_key: str, token: str, pipeline: Any = None) -> None:
        """Drop the lock only if it is still ours (it may have expired and been retaken)."""
        (pipeline if pipeline is not None else self.r).eval(RELEASE, 1, lock_key, token)

    # --- tickets -----------------------------------------------------------------------------
    def next_ticket_no(self, prefix: str) -> str:
        day = datetime.fromtimestamp(self.clock(), CHINA).strftime("%Y%m%d")
        key = self.keys.ticket_seq(day)
        pipe = self.r.pipeline()
        pipe.incr(key)
        pipe.expire(key, 3 * 24 * 3600)
        seq, _ = pipe.execute()
        return f"{prefix}-{day}-{seq:04d}"

    def load_ticket(self, no: str) -> Ticket | None:
        fields = self.r.hgetall(self.keys.ticket(no))
        return Ticket.from_fields(fields) if fields else None

    def save_ticket(self, ticket: Ticket, pipeline: Any = None) -> None:
        target = pipeline if pipeline is not None else self.r
        target.hset(self.keys.ticket(ticket.no), mapping=ticket.to_fields())
        if ticket.is_open:
            target.zadd(self.keys.open_tickets(), {ticket.no: ticket.response_due})
        else:
            target.zrem(self.keys.open_tickets(), ticket.no)

    def add_consumer_ticket(self, openid: str, no: str, pipeline: Any = None) -> None:
        (pipeline if pipeline is not None else self.r).lpush(self.keys.user_tickets(openid), no)

    def consumer_tickets(self, openid: str, limit: int = 10) -> list[Ticket]:
        numbers = self.r.lrange(self.keys.user_tickets(openid), 0, limit - 1)
        pipe = self.r.pipeline(transaction=False)
        for no in numbers:
            pipe.hgetall(self.keys.ticket(no))
        return [Ticket.from_fields(f) for f in pipe.execute() if f]

    def open_ticket_numbers(self) -> list[str]:
        return self.r.zrange(self.keys.open_tickets(), 0, -1)

    # --- transcript and settlement -------------------------------------------------------------
    def append_transcript(self, no: str, role: str, text: str, pipeline: Any = None, **extra: Any) -> None:
        entry = {"at": round(self.clock(), 3), "role": role, "text": text, **extra}
        (pipeline if pipeline is not None else self.r).rpush(self.keys.transcript(no), json.dumps(entry, ensure_ascii=False))

    def transcript(self, no: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.r.lrange(self.keys.transcript(no), 0, -1)]

    def save_settlement(self, no: str, record: dict[str, Any], pipeline: Any = None) -> None:
        (pipeline if pipeline is not None else self.r).set(self.keys.settlement(no), json.dumps(record, ensure_ascii=False))

    def settlement(self, no: str) -> dict[str, Any] | None:
        raw = self.r.get(self.keys.settlement(no))
        return json.loads(raw) if raw else None

    # --- invitations -------------------------------------------------------------------------
    def create_invite(self, no: str, ttl: int = defaults.INVITE_TTL_SECONDS) -> str:
        """A fresh 6-digit code that no other open invitation uses."""
        for _ in range(20):
            code = f"{secrets.randbelow(900000) + 100000}"
            if self.r.set(self.keys.invite(code), no, nx=True, ex=ttl):
                return code
        raise RuntimeError("could not find a free invitation code")

    def resolve_invite(self, code: str) -> str | None:
        return self.r.get(self.keys.invite(code))

    def drop_invite(self, code: str, pipeline: Any = None) -> None:
        (pipeline if pipeline is not None else self.r).delete(self.keys.invite(code))

    def pipeline(self) -> Any:
        return self.r.pipeline(transaction=True)

    def delete_namespace(self) -> int:
        """Remove every key of this namespace (tests, and `bot demo` on a fresh run)."""
        removed = 0
        batch: list[str] = []
        for key in self.r.scan_iter(match=f"{self.keys.ns}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += self.r.delete(*batch)
                batch = []
        if batch:
            removed += self.r.delete(*batch)
        return removed

    # --- evidence (media downloaded by the worker, bot/media.py) --------------------------------
    def save_media(self, media_id: str, record: dict[str, Any], pipeline: Any = None) -> None:
        """media_id → {sha256, path (relative to data_dir), size, content_type, at, ...}."""
        (pipeline if pipeline is not None else self.r).set(self.keys.media(media_id), json.dumps(record, ensure_ascii=False))

    def media(self, media_id: str) -> dict[str, Any] | None:
        raw = self.r.get(self.keys.media(media_id))
        return json.loads(raw) if raw else None

    def ticket_evidence(self, no: str) -> list[dict[str, Any]]:
        """The ticket's photos in the order sent: each the stored record plus ``media_id`` and
        ``stored`` (False while the download is pending or after it failed: see the dead letters)."""
        ticket = self.load_ticket(no)
        if ticket is None or not ticket.photos:
            return []
        raw = self.r.mget([self.keys.media(m) for m in ticket.photos])
        return [dict(json.loads(r), media_id=m, stored=True) if r else {"media_id": m, "stored": False}
                for m, r in zip(ticket.photos, raw)]

    # --- many tickets at once (issue 4: operator lists, statistics, the mobile team's view) -----
    def load_tickets(self, numbers: list[str]) -> list[Ticket]:
        """Several tickets in one round trip, in the order given; missing ones are skipped."""
        pipe = self.r.pipeline(transaction=False)
        for no in numbers:
            pipe.hgetall(self.keys.ticket(no))
        return [Ticket.from_fields(f) for f in pipe.execute() if f] if numbers else []

    def all_ticket_numbers(self) -> list[str]:
        """Every ticket ever opened, by SCAN (there is no index of finished tickets yet). A
        district's few thousand tickets a year scan in milliseconds; statistics and the mobile
        team's view of finished tickets need them, the work lists use ``open_ticket_numbers``."""
        prefix = self.keys.ticket("")
        return sorted(key[len(prefix):] for key in self.r.scan_iter(match=self.keys.ticket_scan(), count=1000)
                      if ":" not in key[len(prefix):])

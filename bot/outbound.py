"""Outbound delivery: no message to a party is ever lost.

The webhook side (``Outbound.after_message``, inside the request: Redis only, no HTTP) opens the
sender's customer-service window, queues the handler's messages and any evidence download as
RQ jobs, and — when the sender has messages waiting — a flush of those, all in one pipeline
(plus one more round trip only when something is pending).

The worker side (job functions ``deliver``, ``flush`` and, in bot/media.py, ``download_media``)
sends through the customer-service API under a per-recipient lock:

    window open (or unknown) ─ send ─► ok ─────────────────────────────────► sent (counted)
                                   ├─► 45015/45047 ─► window blocked ───────────► pending + template
                                   ├─► 48001, token refused ─► CRITICAL once ───► dead letter + template
                                   ├─► 40003/43004/43101/other ─────────────────► dead letter
                                   └─► timeout/5xx/-1 ─► RQ retry (backoff) ─ last ─► dead letter
    window closed ─► pending + template;  others already waiting ─► pending behind them
    person interacts ─► flush: pending messages go out oldest first while the window allows

Delivery is at-least-once: a send that timed out after WeChat accepted it is sent again.
Jobs are JSON (rq JSONSerializer), never pickle (STYLE.md).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

import redis
import requests
from rq import Queue, Retry, get_current_job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from wechatpy.exceptions import WeChatClientException

from bot import defaults
from bot.config import setting
from bot.wechat_client import TOKEN_ERRORS, TokenFetchError
from handlers.base import Incoming, Outgoing
from storage.outbox import Outbox
from storage.store import CHINA, Store

log = logging.getLogger(__name__)

TOKEN_API = "token"
CUSTOM_API = "message/custom/send"
TEMPLATE_API = "message/template/send"
MEDIA_API = "media/get"

WINDOW_ERRORS = {45015, 45047}
"""Outside the window / over its quota: the message waits for the person's next interaction."""
UNAUTHORIZED = 48001
"""The account lacks the API permission: staff must act; reported once, loudly."""
SYSTEM_BUSY = -1

INTERACTION_EVENTS = frozenset({"subscribe", "subscribe_scan", "scan", "click", "scancode_push", "scancode_waitmsg"})
"""Events that open a customer-service window (follow, QR scan, menu click; WECHAT.md §3.2).
Unsubscribe, reported location and the like do not."""

MEDIA_KINDS = ("image", "voice")

LATE_NOTE = "（此消息原发于{time}，当时未能送达，现补发）\n"
"""Put before a pending message that goes out late, so the reader knows when it was written."""

TEMPLATE_TITLES = {
    "new_ticket": "您有一件新的投诉工单待受理",
    "invitation": "您收到一份消费纠纷调解邀请",
    "proposal": "有一份调解方案等待您确认",
    "deadline": "有工单即将超过答复时限",
    "result": "您参与的消费纠纷调解有了结果",
    "notice": "您有一条新的调解消息",
}
TEMPLATE_HINT = "完整内容已为您保留，请在公众号内回复任意内容查看。"
DEFAULT_TEMPLATE_FIELDS = {"first": "{title}", "keyword1": "{ticket}", "keyword2": "{time}", "remark": "{hint}"}


# --- settings ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliverySettings:
    window_seconds: float = defaults.WINDOW_HOURS * 3600
    quota: int = defaults.WINDOW_QUOTA
    retry_intervals: tuple[int, ...] = defaults.RETRY_INTERVALS_SECONDS
    record_ttl: int = defaults.WINDOW_RECORD_TTL_SECONDS
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind → {id, fields, url}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DeliverySettings":
        window_hours = float(setting(config, "delivery.window_hours", defaults.WINDOW_HOURS))
        intervals = setting(config, "delivery.retry_intervals", defaults.RETRY_INTERVALS_SECONDS)
        templates = {}
        for kind, spec in (setting(config, "delivery.templates", {}) or {}).items():
            if kind == "relay":
                continue  # relayed chat waits; it never becomes a template message
            if isinstance(spec, str):
                spec = {"id": spec}
            if isinstance(spec, dict) and spec.get("id"):
                templates[kind] = {"id": str(spec["id"]), "url": spec.get("url") or None,
                                   "fields": dict(spec.get("fields") or DEFAULT_TEMPLATE_FIELDS)}
        return cls(
            window_seconds=window_hours * 3600,
            quota=int(setting(config, "delivery.window_quota", defaults.WINDOW_QUOTA)),
            retry_intervals=tuple(int(i) for i in intervals or ()),
            record_ttl=max(defaults.WINDOW_RECORD_TTL_SECONDS, int(window_hours * 3600)),
            templates=templates,
        )

    def retry(self) -> Retry | None:
        if not self.retry_intervals:
            return None
        return Retry(max=len(self.retry_intervals), interval=list(self.retry_intervals))


def new_id() -> str:
    """Message / dead-letter id: short enough for staff to type (`outbox replay 3f9c0a1b2d4e`)."""
    return secrets.token_hex(6)


# --- the webhook side ----------------------------------------------------------------------------

class Outbound:
    def __init__(self, queue: Queue, outbox: Outbox, settings: DeliverySettings,
                 clock: Callable[[], float] = time.time):
        self.queue = queue
        self.outbox = outbox
        self.settings = settings
        self.clock = clock

    def after_message(self, incoming: Incoming, messages: Iterable[Outgoing],
                      also: Callable[[Any], None] | None = None) -> int:
        """Called once per handled webhook delivery, after the handler succeeded.

        One pipeline: the sender's new window, how many messages wait for them, the handler's
        messages and the evidence download. A second round trip only if something waits.
        Returns the number of messages queued.
        """
        now = self.clock()
        deliveries = [self._deliver_job(m, now) for m in messages if m.to]
        jobs = list(deliveries)
        if incoming.kind in MEDIA_KINDS and incoming.media_id:
            jobs.append(self._media_job(incoming.media_id, incoming.openid, incoming.kind))
        interacted = bool(incoming.openid) and (
            incoming.kind != "event" or incoming.event in INTERACTION_EVENTS)
        if not jobs and not interacted and also is None:
            return 0
        pipe = self.queue.connection.pipeline()
        if also is not None:
            also(pipe)  # the caller's own writes (the webhook's remembered reply) ride along
        if interacted:
            self.outbox.pending_count(incoming.openid, pipeline=pipe)
            self.outbox.record_interaction(incoming.openid, now, self.settings.record_ttl, pipeline=pipe)
        if jobs:
            self.queue.enqueue_many(jobs, pipeline=pipe)
        results = pipe.execute()
        if interacted and results[1 if also is not None else 0]:
            self.queue.enqueue_many([self._flush_job(incoming.openid)])
        return len(deliveries)

    def enqueue_all(self, messages: Iterable[Outgoing], pipeline: Any = None) -> int:
        """Queue messages that no incoming message caused (dashboard actions, clocks, replays);
        with ``pipeline`` they join the caller's transaction."""
        now = self.clock()
        jobs = [self._deliver_job(m, now) for m in messages if m.to]
        if jobs:
            self.queue.enqueue_many(jobs, pipeline=pipeline)
        return len(jobs)

    # --- dead letters (staff: python -m bot outbox) ------------------------------------------
    def replay(self, record_ids: Iterable[str] | None = None) -> list[str]:
        """Queue dead letters again (all of them when ``record_ids`` is None) with fresh
        retries; returns the ids replayed. Queueing and removal are one MULTI/EXEC."""
        records = self.outbox.dead_letters()
        if record_ids is not None:
            wanted = set(record_ids)
            records = [r for r in records if r["id"] in wanted]
        jobs = []
        for record in records:
            if record.get("type") == "media":
                jobs.append(self._media_job(record["media_id"], record.get("openid", ""), record.get("kind", "image")))
            else:
                message = {k: record.get(k) for k in ("id", "to", "text", "kind", "ticket", "created_at")}
                jobs.append(self._prepared("bot.outbound.deliver", message,
                                           f"replay {message['kind']} → {message['to']} ({message['ticket']})"))
        if not jobs:
            return []
        pipe = self.queue.connection.pipeline()
        self.queue.enqueue_many(jobs, pipeline=pipe)
        self.outbox.remove_dead(*[r["id"] for r in records], pipeline=pipe)
        pipe.execute()
        return [r["id"] for r in records]

    def drop(self, record_id: str) -> bool:
        return bool(self.outbox.remove_dead(record_id))

    def status(self) -> dict[str, Any]:
        pending = self.outbox.pending_by_person()
        return {
            "queued": self.queue.count,
            "running": len(StartedJobRegistry(queue=self.queue)),
            "retry_scheduled": len(ScheduledJobRegistry(queue=self.queue)),
            "failed_jobs": len(FailedJobRegistry(queue=self.queue)),
            "pending_people": len(pending),
            "pending_messages": sum(pending.values()),
            "pending": pending,
            "dead_letters": len(self.outbox.dead_letters()),
            "alarms": self.outbox.alarms(),
        }

    # --- job data ------------------------------------------------------------------------------
    def _deliver_job(self, m: Outgoing, now: float):
        message = {"id": new_id(), "to": m.to, "text": m.text, "kind": m.kind, "ticket": m.ticket,
                   "created_at": round(now, 3)}
        return self._prepared("bot.outbound.deliver", message, f"{m.kind} → {m.to} ({m.ticket})")

    def _flush_job(self, openid: str):
        return flush_job(openid, self.settings)

    def _media_job(self, media_id: str, openid: str, kind: str):
        return self._prepared("bot.media.download_media", {"media_id": media_id, "openid": openid, "kind": kind},
                              f"download {kind} {media_id} from {openid}")

    def _prepared(self, func: str, kwargs: dict[str, Any], description: str):
        return job_data(func, kwargs, description, self.settings)


def flush_job(openid: str, settings: DeliverySettings):
    return job_data("bot.outbound.flush", {"openid": openid}, f"flush pending → {openid}", settings)


def job_data(func: str, kwargs: dict[str, Any], description: str, settings: DeliverySettings):
    """One RQ job, JSON-serialised by the queue, retried with the configured backoff."""
    return Queue.prepare_data(
        func, kwargs=kwargs, retry=settings.retry(), result_ttl=600,
        failure_ttl=30 * 24 * 3600,  # a job that crashed stays visible to staff for a month
        description=description,
    )


def make_queue(raw_redis, name: str) -> Queue:
    return Queue(name, connection=raw_redis, serializer=JSONSerializer)


# --- the worker's process-level context ----------------------------------------------------------

@dataclass
class WorkerContext:
    """What jobs need; set once per worker process by ``init_worker`` (bot/cli.py `worker`)."""

    client: Any  # bot.wechat_client.BureauWeChatClient
    store: Store
    outbox: Outbox
    settings: DeliverySettings
    config: dict[str, Any]
    clock: Callable[[], float] = time.time
    queue: Queue | None = None

    def job_queue(self) -> Queue:
        """Where follow-up jobs go: the configured queue, else the running job's own."""
        if self.queue is not None:
            return self.queue
        job = get_current_job()
        if job is None:
            raise RuntimeError("no queue configured and not inside a job")
        return Queue(job.origin, connection=job.connection, serializer=JSONSerializer)

    @property
    def lock_seconds(self) -> float:
        # One send = token fetch + call + one retry after a refresh, each bounded by the timeout.
        return max(defaults.DELIVERY_LOCK_SECONDS, 4 * float(self.client.timeout or defaults.HTTP_TIMEOUT_SECONDS) + 5)


# RQ calls job functions by import path, so they reach the process's context through this.
_worker: WorkerContext | None = None


def init_worker(client, *, store: Store | None = None, outbox: Outbox | None = None, queue: Queue | None = None,
                config: dict[str, Any] | None = None, clock: Callable[[], float] | None = None) -> None:
    """Set the worker's context (``init_worker(None)`` clears it). Only the client is required:
    storage then uses the client's Redis and keys, settings come from bot/defaults.py."""
    global _worker
    if client is None:
        _worker = None
        return
    clock = clock or (store.clock if store is not None else time.time)
    config = config or {}
    _worker = WorkerContext(
        client=client,
        store=store or Store(client.redis, client.keys, clock=clock),
        outbox=outbox or Outbox(client.redis, client.keys, clock=clock),
        settings=DeliverySettings.from_config(config),
        config=config,
        clock=clock,
        queue=queue,
    )


def worker_context() -> WorkerContext:
    if _worker is None:
        raise RuntimeError("delivery worker not initialised (run `python -m bot worker`)")
    return _worker


# --- failures --------------------------------------------------------------------------------------

TRANSIENT, WINDOW, DENIED, PERMANENT = "transient", "window", "unauthorized", "permanent"


@dataclass(frozen=True)
class Failure:
    category: str
    errcode: int | None
    reason: str
    api: str = ""  # set when the failing API is not the one called (the token fetch)


def classify(exc: BaseException) -> Failure:
    """What a failed call means for the message."""
    if isinstance(exc, TokenFetchError) and exc.errcode is not None:
        # appid / secret / IP whitelist refused: every call fails until staff fix the account
        return Failure(DENIED, exc.errcode, f"{exc.errcode} {exc.errmsg}", api=TOKEN_API)
    if isinstance(exc, WeChatClientException):
        code = exc.errcode
        reason = f"{code} {exc.errmsg}" if code is not None else _http_reason(exc)
        if code is None or code == SYSTEM_BUSY:
            return Failure(TRANSIENT, code, reason)
        if code in WINDOW_ERRORS:
            return Failure(WINDOW, code, reason)
        if code == UNAUTHORIZED:
            return Failure(DENIED, code, reason)
        if code in TOKEN_ERRORS or code == 45009:
            # a token refused even after one refresh, or the daily quota: later may work
            return Failure(TRANSIENT, code, reason)
        return Failure(PERMANENT, code, reason)  # 40003 openid, 43004 unfollowed, 43101 refused, ...
    if isinstance(exc, (requests.RequestException, redis.RedisError)):
        return Failure(TRANSIENT, None, f"{type(exc).__name__}: {exc}")
    return Failure(TRANSIENT, None, f"unexpected {type(exc).__name__}: {exc}")


def _http_reason(exc: WeChatClientException) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return f"HTTP {status}" if status else f"{exc.errmsg or 'request failed'}"


def last_attempt() -> bool:
    """True when RQ will not retry the running job again (or when not run by RQ at all)."""
    job = get_current_job()
    return job is None or not job.retries_left


def report_unauthorized(ctx: WorkerContext, api: str, failure: Failure, detail: str) -> None:
    """48001 (or the token endpoint refusing the account): log CRITICAL the first time per API,
    then only a warning until a call to that API succeeds again."""
    api = failure.api or api
    if ctx.outbox.raise_alarm(api, failure.errcode, failure.reason, detail):
        log.critical("WeChat refused %s with %s: the account lacks a permission or is misconfigured; messages "
                     "are kept as dead letters - fix the account, then `python -m bot outbox replay --all` (%s)",
                     api, failure.reason, detail)
    else:
        log.warning("%s refused again (%s, %s); already reported", api, failure.reason, detail)


# --- job functions -------------------------------------------------------------------------------

def deliver(to: str, text: str, kind: str = "notice", ticket: str = "", id: str = "",  # noqa: A002 - JSON key
            created_at: float = 0.0) -> str:
    """RQ job: send one text to one person, or keep it (pending / dead letter). Never drops it."""
    ctx = worker_context()
    message = {"id": id or new_id(), "to": to, "text": text, "kind": kind, "ticket": ticket,
               "created_at": created_at or round(ctx.clock(), 3)}
    if not to:
        return "skipped"
    try:
        with ctx.outbox.delivery_lock(to, ctx.lock_seconds):
            outcome = _deliver_locked(ctx, message)
    except Exception as exc:  # noqa: BLE001 - classified; retried by RQ or kept as a dead letter
        failure = classify(exc)
        if not last_attempt():
            log.warning("delivery of %s to %s failed (%s); RQ retries it", message["id"], to, failure.reason)
            raise
        log.error("delivery of %s to %s failed for the last time (%s): dead letter", message["id"], to, failure.reason)
        ctx.outbox.add_dead(dict(message, type="message", reason=failure.reason, errcode=failure.errcode))
        return "dead"
    if outcome == "behind":
        ctx.job_queue().enqueue_many([flush_job(to, ctx.settings)])
        return "pending"
    if outcome == "pending" and not _still_closed(ctx, to):
        # The person wrote while we parked it, after the webhook looked for pending messages:
        # flush now rather than wait for their next message.
        ctx.job_queue().enqueue_many([flush_job(to, ctx.settings)])
    elif outcome in ("pending", "denied"):
        send_template(ctx, message)
    return outcome


def _deliver_locked(ctx: WorkerContext, message: dict[str, Any]) -> str:
    to = message["to"]
    window, waiting = ctx.outbox.snapshot(to)
    if window.closed(ctx.clock(), ctx.settings.window_seconds, ctx.settings.quota):
        ctx.outbox.park(to, message)
        log.info("%s to %s waits: outside the customer-service window", message["id"], to)
        return "pending"
    if waiting:
        ctx.outbox.park(to, message)  # behind older ones: they go first
        return "behind"
    try:
        _send_text(ctx, to, _late_text(ctx, message))
    except Exception as exc:  # noqa: BLE001 - classified below
        failure = classify(exc)
        if failure.category == WINDOW:
            ctx.outbox.block_window(to, failure.errcode, ctx.settings.record_ttl, seen=window)
            ctx.outbox.park(to, message)
            log.info("%s to %s waits: WeChat answered %s", message["id"], to, failure.reason)
            return "pending"
        if failure.category == DENIED:
            report_unauthorized(ctx, CUSTOM_API, failure, f"message {message['id']} to {to}")
            ctx.outbox.add_dead(dict(message, type="message", reason=failure.reason, errcode=failure.errcode))
            return "denied"
        if failure.category == PERMANENT:
            log.error("%s to %s refused (%s): dead letter", message["id"], to, failure.reason)
            ctx.outbox.add_dead(dict(message, type="message", reason=failure.reason, errcode=failure.errcode))
            return "dead"
        raise
    ctx.outbox.sent(to, CUSTOM_API, counted=window.known)
    log.info("delivered %s %s to %s (%s)", message["kind"], message["id"], to, message["ticket"])
    return "sent"


def _still_closed(ctx: WorkerContext, to: str) -> bool:
    return ctx.outbox.window(to).closed(ctx.clock(), ctx.settings.window_seconds, ctx.settings.quota)


def flush(openid: str) -> str:
    """RQ job: send what waits for ``openid``, oldest first, while their window allows."""
    ctx = worker_context()
    sent = 0
    with ctx.outbox.delivery_lock(openid, ctx.lock_seconds) as lock:
        while True:
            message = ctx.outbox.pending_head(openid)
            if message is None:
                break
            window = ctx.outbox.window(openid)
            if window.closed(ctx.clock(), ctx.settings.window_seconds, ctx.settings.quota):
                break
            lock.reacquire()
            try:
                _send_text(ctx, openid, _late_text(ctx, message))
            except Exception as exc:  # noqa: BLE001 - classified below
                failure = classify(exc)
                dead = dict(message, type="message", reason=failure.reason, errcode=failure.errcode)
                if failure.category == WINDOW:
                    ctx.outbox.block_window(openid, failure.errcode, ctx.settings.record_ttl, seen=window)
                    break
                if failure.category == DENIED:
                    report_unauthorized(ctx, CUSTOM_API, failure, f"message {message['id']} to {openid}")
                    ctx.outbox.kill_head(openid, dead)
                    break
                if failure.category == PERMANENT:
                    log.error("%s to %s refused (%s): dead letter", message["id"], openid, failure.reason)
                    ctx.outbox.kill_head(openid, dead)
                    continue
                if not last_attempt():
                    log.warning("flush to %s failed (%s); RQ retries it", openid, failure.reason)
                    raise
                log.error("flush to %s failed for the last time (%s): %s is a dead letter, the rest waits",
                          openid, failure.reason, message["id"])
                ctx.outbox.kill_head(openid, dead)
                break
            ctx.outbox.sent(openid, CUSTOM_API, counted=window.known, pop_pending=True)
            sent += 1
    if sent:
        log.info("flushed %d pending messages to %s", sent, openid)
    return f"sent {sent}"


def _send_text(ctx: WorkerContext, to: str, text: str) -> None:
    client = ctx.client
    client.call_with_token_retry(lambda: client.message.send_text(to, text))


def _late_text(ctx: WorkerContext, message: dict[str, Any]) -> str:
    created = float(message.get("created_at") or 0)
    if not created or ctx.clock() - created < defaults.LATE_NOTE_AFTER_SECONDS:
        return message["text"]
    when = datetime.fromtimestamp(created, CHINA).strftime("%m月%d日 %H:%M")
    return LATE_NOTE.format(time=when) + message["text"]


def send_template(ctx: WorkerContext, message: dict[str, Any]) -> bool:
    """The template message for this kind of notice, if one is configured; best effort — the
    full text is kept (pending or dead letter) whatever happens here."""
    spec = ctx.settings.templates.get(message["kind"])
    if spec is None:
        return False
    values = _TemplateValues(
        title=TEMPLATE_TITLES.get(message["kind"], TEMPLATE_TITLES["notice"]),
        ticket=message.get("ticket") or "—",
        time=datetime.fromtimestamp(float(message.get("created_at") or ctx.clock()), CHINA).strftime("%Y-%m-%d %H:%M"),
        summary=_summary(message["text"]),
        hint=TEMPLATE_HINT,
    )
    data = {name: {"value": str(fmt).format_map(values)} for name, fmt in spec["fields"].items()}
    client = ctx.client
    try:
        client.call_with_token_retry(
            lambda: client.message.send_template(message["to"], spec["id"], data, url=spec["url"]))
    except Exception as exc:  # noqa: BLE001 - a courtesy notice; the full text is kept anyway
        failure = classify(exc)
        if failure.category == DENIED:
            report_unauthorized(ctx, TEMPLATE_API, failure, f"template for {message['id']} to {message['to']}")
        else:
            log.warning("template for %s to %s failed (%s); the full text still waits",
                        message["id"], message["to"], failure.reason)
        return False
    ctx.outbox.clear_alarm(TEMPLATE_API, TOKEN_API)
    log.info("template %s sent to %s for %s", spec["id"], message["to"], message["id"])
    return True


class _TemplateValues(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _summary(text: str, limit: int = 20) -> str:
    """Template "thing" fields take 20 characters: the first line, shortened."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 1] + "…"

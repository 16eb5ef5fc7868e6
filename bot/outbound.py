"""Outbound delivery: every message to someone other than the sender is an RQ job.

The webhook only enqueues (one pipeline for all of a request's messages); a worker process
sends them through the customer-service API. Jobs are JSON, never pickle (STYLE.md).
Issue 3 adds the 48-hour window, pending delivery on the person's next message, template
fallbacks and the dead-letter list; today a failed send is retried by RQ and then kept in
RQ's failed-job registry, never dropped silently.
"""

from __future__ import annotations

import logging
from typing import Iterable

from rq import Queue, Retry
from rq.serializers import JSONSerializer

from handlers.base import Incoming, Outgoing

log = logging.getLogger(__name__)

RETRY_INTERVALS = [2, 10, 60]


class Outbound:
    def __init__(self, queue: Queue):
        self.queue = queue

    def after_message(self, incoming: Incoming, messages: Iterable[Outgoing]) -> int:
        """Called once per handled webhook delivery, after the handler succeeded: queue what
        the handler wants sent to other people. (The sender's interaction opens their
        customer-service window; issue 3 tracks it here.)"""
        return self.enqueue_all(messages)

    def enqueue_all(self, messages: Iterable[Outgoing]) -> int:
        jobs = [
            Queue.prepare_data(
                "bot.outbound.deliver",
                kwargs={"to": m.to, "text": m.text, "kind": m.kind, "ticket": m.ticket},
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                result_ttl=600,
                failure_ttl=30 * 24 * 3600,  # failed sends stay visible to staff for a month
                description=f"{m.kind} → {m.to} ({m.ticket})",
            )
            for m in messages
        ]
        if jobs:
            self.queue.enqueue_many(jobs)
        return len(jobs)


def make_queue(raw_redis, name: str) -> Queue:
    return Queue(name, connection=raw_redis, serializer=JSONSerializer)


# The worker process sets this once at start (bot/cli.py `worker`); RQ calls job functions
# by import path, so they reach the process's client through it.
_worker_client = None


def init_worker(client) -> None:
    global _worker_client
    _worker_client = client


def deliver(to: str, text: str, kind: str = "notice", ticket: str = "") -> str:
    """RQ job: send one text through the customer-service API."""
    if _worker_client is None:
        raise RuntimeError("delivery worker not initialised (run `python -m bot worker`)")
    _worker_client.call_with_token_retry(lambda: _worker_client.message.send_text(to, text))
    log.info("delivered %s to %s (%s)", kind, to, ticket)
    return "sent"

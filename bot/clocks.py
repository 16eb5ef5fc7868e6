"""Clocks that never forget: a ticket's deadlines as RQ scheduled jobs in Redis.

Each (ticket, kind) has one job with a fixed id (``Keys.clock_job``), so scheduling again
moves the deadline and cancelling removes it; nothing lives in process memory, so a
restart of the web or worker processes loses nothing. The RQ scheduler inside the worker
(``with_scheduler=True``) moves due jobs onto the clocks queue; ``release_due(now)`` does
the same for a given instant (tests move an injected clock instead of sleeping;
``python -m bot clocks tick`` runs it by hand).

A job runs ``handlers.clocks.run_clock`` under the ticket's lock. The handler records the
deadline it fired for on the ticket in the same write as its effects, so a deadline fires at
most once even if RQ runs the job twice (a worker killed mid-job, a replayed job).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from storage.keys import Keys

log = logging.getLogger(__name__)


class Clocks:
    def __init__(self, queue: Queue, keys: Keys, clock: Callable[[], float]):
        self.queue = queue
        self.keys = keys
        self.clock = clock

    @property
    def registry(self) -> ScheduledJobRegistry:
        return ScheduledJobRegistry(queue=self.queue)

    def schedule(self, no: str, kind: str, due: float, pipeline: Any = None) -> None:
        """Set (or move) the ticket's ``kind`` deadline to ``due`` (a timestamp)."""
        job = self.queue.create_job("bot.clocks.fire", kwargs={"no": no, "kind": kind, "due": due},
                                    job_id=self.keys.clock_job(no, kind), result_ttl=7 * 24 * 3600,
                                    failure_ttl=30 * 24 * 3600, description=f"clock {kind} for {no}")
        if pipeline is not None:
            pipeline.lrem(self.queue.key, 0, job.id)  # a released, not yet run old deadline: see cancel
        self.queue.schedule_job(job, datetime.fromtimestamp(due, timezone.utc), pipeline=pipeline)

    def cancel(self, no: str, kinds: Iterable[str], pipeline: Any = None) -> None:
        target = pipeline if pipeline is not None else self.queue.connection
        for kind in kinds:
            job_id = self.keys.clock_job(no, kind)
            target.zrem(self.registry.key, job_id)
            # Already released to the queue but not run yet: take it off the queue as well, or a
            # rescheduled job (same id, new kwargs) would run before its new time.
            target.lrem(self.queue.key, 0, job_id)
            target.delete(Job.key_for(job_id))

    def pending(self, no: str, kinds: Iterable[str]) -> dict[str, float]:
        """Deadlines still waiting for this ticket: kind → due timestamp."""
        out = {}
        for kind in kinds:
            score = self.queue.connection.zscore(self.registry.key, self.keys.clock_job(no, kind))
            if score is not None:
                out[kind] = float(score)
        return out

    def release_due(self, now: float | None = None) -> int:
        """Move every job due by ``now`` onto the queue, as RQ's scheduler does at real time."""
        registry = self.registry
        job_ids = registry.get_jobs_to_schedule(int(now if now is not None else self.clock()))
        if not job_ids:
            return 0
        with self.queue.connection.pipeline() as pipe:
            for job in Job.fetch_many(job_ids, connection=self.queue.connection, serializer=self.queue.serializer):
                if job is not None:
                    self.queue._enqueue_job(job, pipeline=pipe)  # what rq.scheduler does
            for job_id in job_ids:
                registry.remove(job_id, pipeline=pipe)
            pipe.execute()
        return len(job_ids)


def make_clocks(raw_redis, keys: Keys, clock: Callable[[], float]) -> Clocks:
    return Clocks(Queue(keys.clocks_queue(), connection=raw_redis, serializer=JSONSerializer), keys, clock)


# The worker process sets this once at start (``init_clocks``): RQ calls job functions by
# import path, so they reach the process's services through it.
_services = None


def init_clocks(services) -> None:
    global _services
    _services = services


def fire(no: str, kind: str, due: float) -> str:
    """RQ job: a ticket's deadline is due."""
    if _services is None:
        raise RuntimeError("clock worker not initialised (run `python -m bot worker`)")
    from handlers.clocks import run_clock

    result = run_clock(_services, no, kind, float(due))
    log.info("clock %s for %s (due %s): %s", kind, no, due, result)
    return result

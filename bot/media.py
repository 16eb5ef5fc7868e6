"""Evidence: photos and voice a party sends are downloaded at once (media ids die after 3 days).

The webhook queues ``download_media`` for every incoming image or voice (bot/outbound.py
``after_message``); the worker fetches it with ``client.media.download``, writes it under
``<data_dir>/media/`` named by its sha256 (the same picture sent twice is stored once), and
records ``media_id → {sha256, path, size, content_type, at, openid, kind}`` in Redis
(``Store.media``, ``Store.ticket_evidence``). Failures retry like deliveries and end as dead
letters that staff can replay while the media id still lives.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from bot.config import data_dir
from bot.outbound import (DENIED, MEDIA_API, PERMANENT, TOKEN_API, TRANSIENT, Failure, WorkerContext, classify,
                          last_attempt, new_id, report_unauthorized, worker_context)

log = logging.getLogger(__name__)

MEDIA_FOLDER = "media"
EXTENSIONS = {
    "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "audio/amr": ".amr", "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/speex": ".speex",
    "video/mp4": ".mp4",
}


def save_media_file(root: Path, data: bytes, content_type: str) -> dict:
    """Write ``data`` to ``root/media/<sha256><ext>`` (atomically, once) and describe it; the
    path in the record is relative to ``root`` (the data directory)."""
    digest = hashlib.sha256(data).hexdigest()
    folder = root / MEDIA_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    name = digest + EXTENSIONS.get(content_type, ".bin")
    target = folder / name
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return {"sha256": digest, "path": f"{MEDIA_FOLDER}/{name}", "size": len(data), "content_type": content_type}


def media_root(ctx: WorkerContext) -> Path:
    """The data directory (config ``data_dir``) the records' paths are relative to."""
    return data_dir(ctx.config or {"data_dir": "data"})


def download_media(media_id: str, openid: str = "", kind: str = "image") -> str:
    """RQ job: download one incoming photo/voice and record it. Idempotent: a media id already
    recorded is not fetched again."""
    ctx = worker_context()
    if ctx.store.media(media_id) is not None:
        return "already stored"
    client = ctx.client
    try:
        answer = client.call_with_token_retry(lambda: client.media.download(media_id))
    except Exception as exc:  # noqa: BLE001 - classified: retried by RQ, or kept as a dead letter
        failure = classify(exc)
        if failure.category == TRANSIENT and not last_attempt():
            log.warning("download of %s failed (%s); RQ retries it", media_id, failure.reason)
            raise
        return _give_up(ctx, media_id, openid, kind, failure)
    if isinstance(answer, dict):  # JSON instead of bytes: a video link or an odd answer
        return _give_up(ctx, media_id, openid, kind, Failure(PERMANENT, None, f"JSON instead of media: {answer}"))
    data = answer.content
    content_type = (answer.headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip()
    try:
        record = save_media_file(media_root(ctx), data, content_type)
        record.update(at=round(ctx.clock(), 3), openid=openid, kind=kind)
        ctx.store.save_media(media_id, record)
    except Exception as exc:  # noqa: BLE001 - disk or Redis trouble: retry, then a dead letter
        failure = classify(exc)
        if not last_attempt():
            log.warning("storing %s failed (%s); RQ retries it", media_id, failure.reason)
            raise
        return _give_up(ctx, media_id, openid, kind, failure)
    ctx.outbox.clear_alarm(MEDIA_API, TOKEN_API)
    log.info("stored %s %s from %s as %s (%d bytes)", kind, media_id, openid, record["path"], record["size"])
    return record["path"]


def _give_up(ctx: WorkerContext, media_id: str, openid: str, kind: str, failure: Failure) -> str:
    if failure.category == DENIED:
        report_unauthorized(ctx, MEDIA_API, failure, f"media {media_id} from {openid}")
    log.error("download of %s from %s failed (%s): dead letter", media_id, openid, failure.reason)
    ctx.outbox.add_dead({"id": new_id(), "type": "media", "media_id": media_id, "openid": openid, "kind": kind,
                         "reason": failure.reason, "errcode": failure.errcode, "created_at": round(ctx.clock(), 3)})
    return "dead"

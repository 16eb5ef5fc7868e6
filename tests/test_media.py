"""Evidence photos and voice are downloaded at once (media ids die after 3 days), stored under the
data directory by sha256 and recorded in Redis; failures retry and end as replayable dead letters."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from bot.media import save_media_file
from handlers.base import Incoming
from tests.conftest import CONSUMER
from tests.test_main_path import file_complaint
from tests.test_outbound import client_timeout, clock, config, delivery, services, worker  # noqa: F401 - fixtures

VOICE = b"#!AMR\n" + bytes(range(64))


def test_a_complaint_photo_is_downloaded_and_listed_as_the_tickets_evidence(
        services, worker, standin, wechat, tmp_path):
    data = standin.add_media("MEDIA_RECEIPT")
    no = file_complaint(wechat)  # sends the image "MEDIA_RECEIPT" during intake
    worker()
    digest = hashlib.sha256(data).hexdigest()
    stored = tmp_path / "media" / f"{digest}.jpg"
    assert stored.read_bytes() == data
    record = services.store.media("MEDIA_RECEIPT")
    assert record["sha256"] == digest and record["size"] == len(data) and record["content_type"] == "image/jpeg"
    assert record["path"] == f"media/{digest}.jpg" and record["openid"] == CONSUMER and record["at"] > 0
    [evidence] = services.store.ticket_evidence(no)
    assert evidence["media_id"] == "MEDIA_RECEIPT" and evidence["stored"] is True
    assert (tmp_path / evidence["path"]).exists()
    assert [c["params"]["media_id"] for c in standin.calls("media/get")] == ["MEDIA_RECEIPT"]


def test_voice_is_kept_too(services, worker, standin, tmp_path):
    standin.add_media("VOICE_1", VOICE, content_type="audio/amr")
    services.outbound.after_message(Incoming(openid=CONSUMER, kind="voice", media_id="VOICE_1", msg_id="77"), [])
    worker()
    record = services.store.media("VOICE_1")
    assert record["content_type"] == "audio/amr" and record["path"].endswith(".amr") and record["kind"] == "voice"
    assert (tmp_path / record["path"]).read_bytes() == VOICE


def test_the_same_picture_twice_is_stored_once(tmp_path):
    first = save_media_file(tmp_path, b"same bytes", "image/png")
    second = save_media_file(tmp_path, b"same bytes", "image/png")
    assert first == second and first["path"].endswith(".png")
    assert [p.name for p in (tmp_path / "media").iterdir()] == [Path(first["path"]).name]


def test_an_already_stored_media_id_is_not_fetched_again(services, worker, standin):
    standin.add_media("M1")
    for msg_id in ("1", "2"):  # e.g. a replayed dead letter of something that did arrive meanwhile
        services.outbound.after_message(Incoming(openid=CONSUMER, kind="image", media_id="M1", msg_id=msg_id), [])
        worker()
    assert len(standin.calls("media/get")) == 1


def test_a_transient_failure_is_retried(services, worker, standin):
    standin.add_media("M2")
    standin.inject("media/get", http_status=502)
    services.outbound.after_message(Incoming(openid=CONSUMER, kind="image", media_id="M2", msg_id="3"), [])
    worker()
    assert services.store.media("M2") is not None
    assert len(standin.calls("media/get")) == 2


def test_an_unknown_media_id_is_a_dead_letter_that_staff_can_replay(services, worker, standin, tmp_path):
    services.outbound.after_message(Incoming(openid=CONSUMER, kind="image", media_id="LATE", msg_id="4"), [])
    worker()
    assert len(standin.calls("media/get")) == 1  # 40007 is not retried
    [dead] = services.outbound.outbox.dead_letters()
    assert dead["type"] == "media" and dead["media_id"] == "LATE" and dead["reason"].startswith("40007")
    assert services.store.media("LATE") is None

    standin.add_media("LATE")
    assert services.outbound.replay(None) == [dead["id"]]
    worker()
    assert (tmp_path / services.store.media("LATE")["path"]).exists()
    assert services.outbound.outbox.dead_letters() == []


def test_evidence_lists_photos_not_yet_stored(services, worker, standin, wechat):
    standin.inject("media/get", http_status=500, times=None)
    no = file_complaint(wechat)
    worker()
    assert services.store.ticket_evidence(no) == [{"media_id": "MEDIA_RECEIPT", "stored": False}]
    assert [d["media_id"] for d in services.outbound.outbox.dead_letters()] == ["MEDIA_RECEIPT"]


def test_media_api_unauthorized_raises_the_alarm(services, worker, standin, caplog):
    standin.inject("media/get", errcode=48001, times=None)
    for i in range(2):
        services.outbound.after_message(
            Incoming(openid=CONSUMER, kind="image", media_id=f"X{i}", msg_id=f"9{i}"), [])
    with caplog.at_level(logging.WARNING):
        worker()
    assert [r.levelno for r in caplog.records].count(logging.CRITICAL) == 1
    assert set(services.outbound.outbox.alarms()) == {"media/get"}
    assert len(services.outbound.outbox.dead_letters()) == 2


@pytest.mark.parametrize("kind", ["text", "location"])
def test_only_images_and_voice_are_downloaded(services, worker, standin, kind):
    services.outbound.after_message(Incoming(openid=CONSUMER, kind=kind, text="x", media_id="", msg_id="5"), [])
    worker()
    assert standin.calls("media/get") == []

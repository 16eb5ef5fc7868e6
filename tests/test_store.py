"""Storage details that the handlers' transactions rely on."""

from __future__ import annotations

from flows.mediation import Ticket


def test_writes_given_an_empty_pipeline_wait_for_its_execute(services, redis_data):
    # redis-py pipelines are falsy while empty: `pipeline or client` would write at once and
    # break the all-or-nothing transaction of the first write of every handler.
    store = services.store
    pipe = store.pipeline()
    store.save_user("oX", {"ticket": "LZ-1"}, pipeline=pipe)
    store.save_ticket(Ticket(no="LZ-9"), pipe)
    store.append_transcript("LZ-9", "system", "x", pipeline=pipe)
    assert store.load_user("oX") == {} and store.load_ticket("LZ-9") is None
    pipe.execute()
    assert store.load_user("oX") == {"ticket": "LZ-1"} and store.load_ticket("LZ-9").no == "LZ-9"


def test_lock_and_read_is_exclusive_and_released_only_by_its_owner(services, redis_data):
    store = services.store
    store.save_ticket(Ticket(no="LZ-7", facts="f"))
    lock_key = store.keys.ticket_lock("LZ-7")
    token, fields = store.lock_and_read(lock_key, store.keys.ticket("LZ-7"))
    assert token and fields["facts"] == "f"
    assert store.lock_and_read(lock_key, store.keys.ticket("LZ-7"), wait=0.05) == (None, {})
    store.release(lock_key, "not-the-owner")
    assert store.lock_and_read(lock_key, store.keys.ticket("LZ-7"), wait=0.05)[0] is None
    store.release(lock_key, token)
    assert store.lock_and_read(lock_key, store.keys.ticket("LZ-7"), wait=0.05)[0]

"""Key formats are a storage contract: a change needs a migration, so pin them."""

from storage.keys import Keys


def test_key_strings_are_stable():
    k = Keys("med")
    assert k.dedupe("m:123") == "med:dedupe:m:123"
    assert k.user("oA") == "med:user:oA"
    assert k.user_lock("oA") == "med:user:oA:lock"
    assert k.user_tickets("oA") == "med:user:oA:tickets"
    assert k.ticket("LZ-20261203-0001") == "med:ticket:LZ-20261203-0001"
    assert k.ticket_lock("LZ-1") == "med:ticket:LZ-1:lock"
    assert k.transcript("LZ-1") == "med:ticket:LZ-1:transcript"
    assert k.settlement("LZ-1") == "med:ticket:LZ-1:settlement"
    assert k.ticket_seq("20261203") == "med:seq:ticket:20261203"
    assert k.invite("123456") == "med:invite:123456"
    assert k.open_tickets() == "med:tickets:open"
    assert k.wechat_session_prefix() == "med:wechat"
    assert k.token_lock() == "med:wechat:token:lock"
    assert k.outbound_queue() == "med:outbound"


def test_namespace_isolates_deployments():
    assert Keys("test").ticket("X").startswith("test:")


def test_staff_and_audit_key_strings_are_stable():
    k = Keys("med")
    assert k.staff("S001") == "med:staff:S001"
    assert k.staff_ids() == "med:staff:ids"
    assert k.staff_by_openid() == "med:staff:by_openid"
    assert k.staff_by_name() == "med:staff:by_name"
    assert k.staff_login_code("S001") == "med:staff:S001:login"
    assert k.staff_bind_code("12345678") == "med:staff:bind:12345678"
    assert k.staff_bind_failures("oA") == "med:staff:bind_failures:oA"
    assert k.staff_seq() == "med:seq:staff"
    assert k.audit() == "med:audit"
    assert k.ticket_audit("LZ-1") == "med:ticket:LZ-1:audit"
    assert k.ticket_scan() == "med:ticket:*"


def test_clock_and_merchant_key_strings_are_stable():
    k = Keys("med")
    assert k.clock_job("LZ-20261203-0001", "response") == "med-clock-LZ-20261203-0001-response"
    assert k.clocks_queue() == "med:clocks"
    assert k.merchant("M001") == "med:merchant:M001"
    assert k.merchant_ids() == "med:merchant:ids"
    assert k.merchant_by_openid() == "med:merchant:by_openid"
    assert k.merchant_bind_code("12345678") == "med:merchant:bind:12345678"
    assert k.merchant_seq() == "med:seq:merchant"

"""Defaults for every tunable, one constant each, with why it has that value.

config.example.yaml documents the same keys for operators; this module is where code reads
its fallbacks, so a missing key in a user's YAML never crashes the service.
"""

RESPONSE_HOURS = 24
"""Linzi mechanism: the handling unit answers the consumer within 24 hours of the ticket."""

DEDUPE_TTL_SECONDS = 300
"""WeChat re-sends a body up to 3 times within about 15 s; 5 minutes covers that with room."""

LOCK_TIMEOUT_SECONDS = 10
"""A ticket/user lock is held for one request (a few ms); 10 s frees it if a process dies."""

LOCK_WAIT_SECONDS = 3
"""How long a request waits for a busy lock; well inside WeChat's 5-second budget."""

INVITE_TTL_SECONDS = 7 * 24 * 3600
"""An invitation code lives as long as a merchant may reasonably take to join (a week)."""

INTAKE_TTL_SECONDS = 24 * 3600
"""An abandoned intake draft is forgotten after a day (issue 3 adds the "expired" notice)."""

HTTP_TIMEOUT_SECONDS = 5
"""Every outbound call to WeChat has a timeout; wechatpy's default is none at all."""

TICKET_PREFIX = "LZ"
"""Readable ticket numbers: LZ-20261203-0001 (district code, date, daily sequence)."""

REDIS_NAMESPACE = "med"
"""Prefix of every Redis key; see storage/keys.py."""

API_BASE_URL = "https://api.weixin.qq.com/cgi-bin/"
"""WeChat's API; the demo and the tests point this at our stand-in (bot/standin.py)."""

MAX_BODY_BYTES = 64 * 1024
"""Largest webhook body accepted; WeChat's real messages are a few KiB."""

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

WINDOW_HOURS = 48
"""A person's customer-service window: 客服消息 reach them for 48 hours after they last wrote to
the account (WECHAT.md §3.2). Outside it a message waits as pending for their next interaction."""

WINDOW_QUOTA = 20
"""Customer-service messages we send per window before holding the rest as pending. The platform's
figure varies (the current guide says 5, field reports 20, WECHAT.md §3.2); WeChat's own 45047
answer is what counts, so a too-high local quota costs one refused call, a too-low one delays
messages for nothing."""

WINDOW_RECORD_TTL_SECONDS = 30 * 24 * 3600
"""How long a person's window record is kept after their last interaction. Without a record the
worker simply tries (staff who never wrote to the bot, records from before this feature) and
WeChat's 45015 decides."""

RETRY_INTERVALS_SECONDS = (10, 60, 300, 1800)
"""Backoff between attempts after a transient failure (timeout, connection error, HTTP 5xx,
errcode -1): four retries over about 36 minutes ride out a short outage; after the last one the
message becomes a dead letter for staff to replay (``python -m bot outbox replay``)."""

DELIVERY_LOCK_SECONDS = 60
"""The per-recipient delivery lock; renewed before every send, so it only has to outlive one
send (token fetch + call + one retry, each bounded by the HTTP timeout)."""

LATE_NOTE_AFTER_SECONDS = 600
"""A message that goes out this long after it was written starts with a line saying when it was
written (bot/outbound.py LATE_NOTE): in a mediation, who said what when matters."""

# --- staff and the audit trail (issue 4) ----------------------------------------------------------

STAFF_BIND_TTL_SECONDS = 3 * 24 * 3600
"""A binding code from ``staff add`` works for three days: long enough to hand it over in person,
short enough that a lost note is soon useless. ``staff rebind`` issues a new one."""

STAFF_BIND_MAX_FAILURES = 5
"""Wrong ``绑定`` codes one WeChat user may send per hour before binding is refused for them: an
8-digit code cannot be guessed five times an hour."""

STAFF_BIND_FAILURE_WINDOW_SECONDS = 3600

STAFF_LOGIN_CODE_TTL_SECONDS = 600
"""A one-time dashboard login code (``staff login-code``) lives ten minutes."""

AUDIT_MAXLEN = 200_000
"""The global audit stream keeps about this many entries (XADD MAXLEN ~): years of a district
bureau's commands at a few MB. Each ticket's own stream is kept separately, so trimming the
global one never loses a ticket's timeline."""

AUDIT_TICKET_MAXLEN = 2_000
"""Entries kept per ticket; a real mediation has a few dozen."""

# --- clocks (issue 5: handlers/clocks.py, bot/clocks.py) -------------------------------------------

REMIND_HOURS = 20
"""The unit's staff are reminded this long after a ticket arrived if nobody has answered the
consumer: four hours before the 24-hour response limit, time enough to act in a working day."""

MERCHANT_JOIN_REMIND_HOURS = 24
"""A merchant invited a day ago who has not joined: the mediator is reminded to chase them."""

MERCHANT_JOIN_ESCALATE_HOURS = 72
"""Three days without the merchant joining: the case goes to the mobile team (机动维权小分队),
who can visit the shop; 第二十三条(二) "refuses or does not attend" is theirs to judge."""

PROPOSAL_REMIND_HOURS = 24
"""A proposal unanswered for a day: whoever has not answered is reminded once."""

PROPOSAL_EXPIRE_HOURS = 72
"""Unanswered for three days: treated as no answer; mediation goes on without that proposal."""

RATING_TIMEOUT_HOURS = 72
"""The rating (回访) is asked once; three days without an answer close the ticket unrated."""

MERCHANT_FIRST_WINDOW_HOURS = 24
"""How long a registered merchant (ODR enterprise, liaison station) has to settle a complaint
itself before the bureau's unit takes over. The 12315 ODR rule allows 10 working days; the Linzi
24-hour promise is why the default is one day."""

ACCEPTANCE_WORKDAYS = 7
"""受理 decided within 7 working days of receipt (消保法 第四十六条; kept by 第121号令, article number not verified)."""

MEDIATION_DAYS = 60
"""Mediation ends within 60 calendar days of 受理, else 终止调解 reason 五 (办法 第二十三条)."""

REPORT_CHECK_WORKDAYS = 15
"""A 举报 is checked (核查) within 15 working days of receipt (行政处罚程序规定)."""

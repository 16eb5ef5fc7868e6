"""Every Redis key the service uses is built here, and only here.

Format (``<ns>`` is the configurable namespace, default ``med``; tests use their own)::

    <ns>:dedupe:<fingerprint>          STRING  reply cached for a WeChat re-delivery (TTL)
    <ns>:user:<openid>                 HASH    who this person is right now (role, active ticket + ``also``: their other open ones, intake)
    <ns>:user:<openid>:lock            STRING  per-person lock (intake answers land in order)
    <ns>:user:<openid>:tickets         LIST    ticket numbers this consumer opened, newest first
    <ns>:ticket:<no>                   HASH    a ticket (工单): facts, routing, state, parties, clocks
    <ns>:ticket:<no>:lock              STRING  per-ticket lock (one state change at a time)
    <ns>:ticket:<no>:transcript        LIST    JSON lines: relayed messages and system events
    <ns>:ticket:<no>:settlement        STRING  JSON settlement record (terms, parties, time, transcript)
    <ns>:seq:ticket:<yyyymmdd>         STRING  daily ticket counter
    <ns>:invite:<code>                 STRING  invitation code → ticket number (TTL)
    <ns>:tickets:open                  ZSET    open tickets scored by response deadline
    <ns>:wechat                        prefix  wechatpy session storage (access_token)
    <ns>:wechat:token:lock             STRING  the single access_token refresher's lock
    <ns>:outbound                      prefix  for RQ queue names (``<ns>:outbound``)
    <ns>:user:<openid>:window          HASH    customer-service window: at (last interaction), sent, blocked, n
    <ns>:user:<openid>:pending         LIST    JSON messages waiting for this person's next interaction, oldest first
    <ns>:user:<openid>:delivery:lock   STRING  one sender/flusher per recipient (never the handlers' user lock)
    <ns>:outbox:dead                   HASH    dead letters: id → JSON (message or media download, with reason)
    <ns>:outbox:alarm                  HASH    refused APIs (48001, token refused): API path → JSON (first seen)
    <ns>:media:<media_id>              STRING  JSON evidence: sha256, path (under data_dir), size, content_type, at
    <ns>:dashboard:secret              STRING  the staff dashboard's session-signing key when config has none (shared by workers)
    <ns>:dashboard:session:<sid>       STRING  a dashboard login: session id → staff id (TTL = session lifetime; logout deletes)
    <ns>:dashboard:login_failures:<name> STRING failed dashboard logins for a staff name (TTL = lockout window)
    <ns>:clocks                        prefix  RQ queue of ticket clocks; jobs ``<ns>-clock-<no>-<kind>``
    <ns>:staff:<id>                    HASH    a staff member: name, unit, role, openid, created_at, bind_code, password
    <ns>:staff:ids                     ZSET    every staff id, scored by creation time
    <ns>:staff:by_openid               HASH    bound WeChat openid → staff id (who is this sender?)
    <ns>:staff:by_name                 HASH    name → staff id (names are unique: the dashboard logs in by name)
    <ns>:staff:<id>:login              STRING  a one-time dashboard login code (TTL)
    <ns>:staff:bind:<code>             STRING  a one-time binding code (``绑定 <code>``) → staff id (TTL)
    <ns>:staff:bind_failures:<openid>  STRING  wrong binding codes sent by this openid (TTL: the counting window)
    <ns>:seq:staff                     STRING  staff id counter (ids S001, S002, …; never reused)
    <ns>:merchant:<id>                 HASH    a registered merchant (ODR enterprise / liaison station): name, kind, aliases, contact, openid, bind_code
    <ns>:merchant:ids                  ZSET    every registered merchant id (M001, …), scored by creation time
    <ns>:merchant:by_openid            HASH    bound contact openid → merchant id
    <ns>:merchant:bind:<code>          STRING  a one-time binding code (``绑定 <code>``) → merchant id (TTL)
    <ns>:seq:merchant                  STRING  merchant id counter
    <ns>:audit                         STREAM  every operator command and state change: at, actor, action, detail, no
    <ns>:ticket:<no>:audit             STREAM  the same entries for one ticket: its timeline

The test in tests/test_keys.py pins these strings: change them only with a migration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    ns: str = "med"

    def dedupe(self, fingerprint: str) -> str:
        return f"{self.ns}:dedupe:{fingerprint}"

    def user(self, openid: str) -> str:
        return f"{self.ns}:user:{openid}"

    def user_lock(self, openid: str) -> str:
        return f"{self.ns}:user:{openid}:lock"

    def user_tickets(self, openid: str) -> str:
        return f"{self.ns}:user:{openid}:tickets"

    def ticket(self, no: str) -> str:
        return f"{self.ns}:ticket:{no}"

    def ticket_lock(self, no: str) -> str:
        return f"{self.ns}:ticket:{no}:lock"

    def transcript(self, no: str) -> str:
        return f"{self.ns}:ticket:{no}:transcript"

    def settlement(self, no: str) -> str:
        return f"{self.ns}:ticket:{no}:settlement"

    def ticket_seq(self, yyyymmdd: str) -> str:
        return f"{self.ns}:seq:ticket:{yyyymmdd}"

    def invite(self, code: str) -> str:
        return f"{self.ns}:invite:{code}"

    def open_tickets(self) -> str:
        return f"{self.ns}:tickets:open"

    def wechat_session_prefix(self) -> str:
        return f"{self.ns}:wechat"

    def token_lock(self) -> str:
        return f"{self.ns}:wechat:token:lock"

    def outbound_queue(self) -> str:
        return f"{self.ns}:outbound"

    def user_window(self, openid: str) -> str:
        return f"{self.ns}:user:{openid}:window"

    def user_pending(self, openid: str) -> str:
        return f"{self.ns}:user:{openid}:pending"

    def user_delivery_lock(self, openid: str) -> str:
        return f"{self.ns}:user:{openid}:delivery:lock"

    def dead_letters(self) -> str:
        return f"{self.ns}:outbox:dead"

    def delivery_alarm(self) -> str:
        return f"{self.ns}:outbox:alarm"

    def media(self, media_id: str) -> str:
        return f"{self.ns}:media:{media_id}"

    def clock_job(self, no: str, kind: str) -> str:
        """RQ job id of a ticket's clock (one per ticket and kind: rescheduling replaces it).
        RQ keeps it under ``rq:job:<id>``; ids allow letters, digits, '-' and '_'."""
        return f"{self.ns}-clock-{no}-{kind}"

    def clocks_queue(self) -> str:
        return f"{self.ns}:clocks"

    # --- staff dashboard (bot/dashboard.py) ---------------------------------------------------
    def dashboard_secret(self) -> str:
        return f"{self.ns}:dashboard:secret"

    def dashboard_session(self, sid: str) -> str:
        return f"{self.ns}:dashboard:session:{sid}"

    def login_failures(self, name: str) -> str:
        return f"{self.ns}:dashboard:login_failures:{name}"

    # --- staff and the audit trail (issue 4: storage/staff.py, storage/audit.py) --------------
    # Staff ids are "S" + digits, so they never collide with "ids", "by_openid", "by_name", "bind".
    def staff(self, staff_id: str) -> str:
        return f"{self.ns}:staff:{staff_id}"

    def staff_ids(self) -> str:
        return f"{self.ns}:staff:ids"

    def staff_by_openid(self) -> str:
        return f"{self.ns}:staff:by_openid"

    def staff_by_name(self) -> str:
        return f"{self.ns}:staff:by_name"

    def staff_login_code(self, staff_id: str) -> str:
        return f"{self.ns}:staff:{staff_id}:login"

    def staff_bind_code(self, code: str) -> str:
        return f"{self.ns}:staff:bind:{code}"

    def staff_bind_failures(self, openid: str) -> str:
        return f"{self.ns}:staff:bind_failures:{openid}"

    def staff_seq(self) -> str:
        return f"{self.ns}:seq:staff"

    # --- merchants who settle first (issue 5: storage/merchants.py) ------------------------------
    # Merchant ids are "M" + digits, so they never collide with "ids", "by_openid", "bind".
    def merchant(self, merchant_id: str) -> str:
        return f"{self.ns}:merchant:{merchant_id}"

    def merchant_ids(self) -> str:
        return f"{self.ns}:merchant:ids"

    def merchant_by_openid(self) -> str:
        return f"{self.ns}:merchant:by_openid"

    def merchant_bind_code(self, code: str) -> str:
        return f"{self.ns}:merchant:bind:{code}"

    def merchant_seq(self) -> str:
        return f"{self.ns}:seq:merchant"

    def audit(self) -> str:
        return f"{self.ns}:audit"

    def ticket_audit(self, no: str) -> str:
        return f"{self.ns}:ticket:{no}:audit"

    def ticket_scan(self) -> str:
        """SCAN pattern over ticket keys; callers keep ``<ns>:ticket:<no>`` (no further ':')."""
        return f"{self.ns}:ticket:*"

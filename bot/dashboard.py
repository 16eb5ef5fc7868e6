"""The staff web dashboard at ``/staff``: login, the ticket list, a ticket page with its actions.

Server-rendered (Jinja templates in ``bot/templates/dashboard/``, one stylesheet in
``bot/static/``), no JavaScript and no build step. It is another face of the operator commands,
not a second implementation: each action form becomes the command line a staff member would
type, run by ``handlers.operator.execute`` — the one place that checks roles and writes the
audit trail — and the messages it produces are queued for the delivery worker like the
webhook's. No HTTP to WeChat happens inside a request.

Logging in: a staff name plus a one-time code (``python -m bot staff login-code <name>``) or the
password set with ``python -m bot staff password <name>``. A login is a random session id kept
in Redis (so logout and expiry hold on the server, not only in the browser), carried in Flask's
signed cookie together with a per-session CSRF token that every POST must send back.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request, send_from_directory,
                   session, url_for)
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, HTTPException

from bot.config import data_dir, setting
from flows.mediation import ESCALATION_LEVELS, ROLE_LABELS, TERMINATION_REASONS, Ticket, may
from flows.roles import ROLE_NAMES
from handlers import operator
from handlers.base import COMMANDS, Context, normalise_ticket_no
from handlers.common import mask_phone
from handlers.texts import STATE_NAMES
from storage.store import CHINA

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__, url_prefix="/staff", template_folder="templates",
               static_folder="static", static_url_path="/static")

# --- settings (config ``dashboard:``; config.example.yaml documents them) ----------------------

SESSION_HOURS = 12
"""A login lasts a working day; staff sign in again the next morning."""

LOGIN_ATTEMPTS = 5
"""Failed logins per staff name before that name is locked out for ``LOCKOUT_MINUTES``: a 6-digit
code then takes ~200,000 lockout windows to guess, and a typo or two costs nothing."""

LOCKOUT_MINUTES = 15

MAX_NAME_CHARS = 64
MAX_SECRET_CHARS = 256
MAX_TEXT_CHARS = 1800
"""A proposal or a note longer than this is refused (413) rather than stored cut short; with the
command and ticket number it stays under the 2,000 characters ``operator.execute`` reads."""

COOKIE_NAME = "staff_session"


@dataclass(frozen=True)
class DashboardSettings:
    secret_key: str
    session_hours: float
    login_attempts: int
    lockout_minutes: float
    cookie_secure: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DashboardSettings":
        return cls(
            secret_key=str(setting(config, "dashboard.secret_key", "") or ""),
            session_hours=float(setting(config, "dashboard.session_hours", SESSION_HOURS)),
            login_attempts=int(setting(config, "dashboard.login_attempts", LOGIN_ATTEMPTS)),
            lockout_minutes=float(setting(config, "dashboard.lockout_minutes", LOCKOUT_MINUTES)),
            cookie_secure=bool(setting(config, "dashboard.cookie_secure", False)),
        )


# --- what the pages show ------------------------------------------------------------------------

TICKET_NO = re.compile(r"^[A-Z]{1,8}-\d{8}-\d{4}$")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text | textarea | select
    required: bool = True
    choices: str = ""  # for selects: reasons | units | levels


@dataclass(frozen=True)
class Action:
    """One form on the ticket page = one operator command line: ``<command> <no> [fixed] <fields>``."""

    name: str
    command: str
    label: str
    trigger: str = ""  # the mediation trigger it fires: the form is offered only when the state allows it
    fields: tuple[Field, ...] = ()
    fixed: str = ""


REASON = Field("reason", "原因", "textarea")
ACTIONS = {a.name: a for a in (
    Action("take", "take", "受理", "accept"),
    Action("invite", "invite", "邀请商家", "invite"),
    Action("propose", "propose", "提出方案", "propose", (Field("terms", "方案内容", "textarea"),)),
    Action("remind", "remind", "提醒当事人"),
    Action("note", "note", "内部备注", "", (Field("text", "备注（当事人看不到）", "textarea"),)),
    Action("transfer", "transfer", "转办", "transfer", (Field("unit", "转至单位", "select", choices="units"),)),
    Action("return", "return", "退单（退回接诉员）", "send_back", (REASON,)),
    Action("escalate", "escalate", "上报", "escalate",
           (Field("level", "上报至", "select", choices="levels"), REASON)),
    Action("settled", "close", "记录调解成功（线下达成协议）", "settle", (Field("terms", "协议内容", "textarea"),),
           fixed="settled"),
    Action("close", "close", "终止调解", "terminate",
           (Field("reason", "终止原因（办法第二十三条）", "select", choices="reasons"),
            Field("detail", "补充说明（可不填）", required=False))),
    Action("reopen", "reopen", "重新开启", "reopen", (REASON,)),
)}


def _choices(kind: str) -> list[tuple[str, str]]:
    if kind == "reasons":
        return [(k, f"{k}. {v}") for k, v in TERMINATION_REASONS.items()]
    if kind == "levels":
        return list(ESCALATION_LEVELS.items())
    return [(u.id, u.name) for u in _services().directory.units.values()]


# --- wiring -------------------------------------------------------------------------------------

@bp.record_once
def _setup(state) -> None:
    """Session cookie settings for the whole app: only the dashboard uses sessions."""
    app = state.app
    settings = DashboardSettings.from_config(app.extensions["bot"].config)
    app.extensions["dashboard"] = settings
    if settings.secret_key:
        app.secret_key = settings.secret_key
    app.session_interface = SharedSecretSessions()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH=bp.url_prefix,  # the webhook never sees the cookie
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )


class SharedSecretSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions; without ``dashboard.secret_key`` the signing key is made
    once and kept in Redis, so every gunicorn worker (and a restarted one) accepts the cookie."""

    def get_signing_serializer(self, app):
        if not app.secret_key:
            # The webhook has no use for a session: don't make it wait on Redis for one.
            if not request.path.startswith(bp.url_prefix):
                return None
            try:
                app.secret_key = shared_secret(app.extensions["bot"])
            except redis.RedisError as exc:
                log.warning("dashboard: cannot read the session key from Redis (%s)", exc)
                return None  # a NullSession; _before answers 503 until Redis is back
        return super().get_signing_serializer(app)


def shared_secret(services) -> str:
    """The first process to ask makes the key (SET NX); everyone then reads the same one."""
    key = services.keys.dashboard_secret()
    pipe = services.redis.data.pipeline(transaction=False)
    pipe.set(key, secrets.token_hex(32), nx=True)
    pipe.get(key)
    _, value = pipe.execute()
    return value


def _services():
    return current_app.extensions["bot"]


def _settings() -> DashboardSettings:
    return current_app.extensions["dashboard"]


def handler_context() -> Context:
    """The handlers' Context for one dashboard request (no incoming WeChat message)."""
    s = _services()
    return Context(store=s.store, router=s.router, directory=s.directory, config=s.config, clock=s.clock,
                   staff=s.staff, audit=s.audit, clocks=s.clocks)


PUBLIC_ENDPOINTS = {"dashboard.login", "dashboard.static"}


@bp.before_request
def _before():
    if not current_app.secret_key:
        abort(503)
    if request.method == "POST":
        check_csrf()
    g.staff = current_staff()
    if g.staff is None and request.endpoint not in PUBLIC_ENDPOINTS:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for(".login", next=target) if target else url_for(".login"))
    return None


@bp.after_request
def _headers(response):
    # Consumer phone numbers and complaint texts: never cached, never framed, no inline script.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return response


class BadInput(BadRequest):
    """400 whose description is a Chinese sentence for the staff member (others stay generic)."""


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    detail = exc.description if isinstance(exc, BadInput) else ""
    return render_template("dashboard/error.html", code=exc.code, message=ERROR_TEXTS.get(exc.code, exc.name),
                           detail=detail), exc.code


@bp.errorhandler(redis.RedisError)
def _redis_down(exc: redis.RedisError):
    log.warning("dashboard: Redis error %s: %s", type(exc).__name__, exc)
    return render_template("dashboard/error.html", code=503, message=ERROR_TEXTS[503], detail=""), 503


ERROR_TEXTS = {
    400: "请求有误，请返回重试。",
    403: "您无权查看该工单。",
    404: "找不到该页面或工单。",
    405: "不支持该操作方式。",
    413: "提交的内容过长。",
    429: "操作过于频繁，请稍后再试。",
    503: "系统暂时不可用，请稍后再试。",
}


def bad_request(text: str):
    raise BadInput(description=text)


# --- CSRF ---------------------------------------------------------------------------------------

def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    expected = session.get("csrf") or ""
    sent = request.form.get("csrf_token", "")
    # Bytes: compare_digest refuses non-ASCII str, and a forged form may send anything.
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("dashboard: POST %s refused: CSRF token missing or wrong", request.path)
        bad_request("页面已过期或来源不明，请刷新页面后重试。")


@bp.app_template_filter("dt")
def _datetime_text(ts: Any) -> str:
    try:
        value = float(ts or 0)
    except (TypeError, ValueError):
        return ""
    return datetime.fromtimestamp(value, CHINA).strftime("%Y-%m-%d %H:%M") if value else ""


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "staff": g.get("staff"), "role_names": ROLE_NAMES,
            "unit_label": _services().directory.unit_name}


# --- login --------------------------------------------------------------------------------------

def current_staff():
    sid = session.get("sid")
    if not sid or not isinstance(sid, str):
        return None
    s = _services()
    staff_id = s.redis.data.get(s.keys.dashboard_session(sid))
    return s.staff.get(staff_id) if staff_id else None


def safe_next(target: str | None) -> str | None:
    """Only a path inside the dashboard: never an open redirect to another site."""
    if not target or not target.startswith(bp.url_prefix + "/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.staff is not None:
            return redirect(next_url or url_for(".tickets"))
        return render_template("dashboard/login.html", next=next_url, name="", error="")
    name = request.form.get("name", "").strip()
    secret = request.form.get("secret", "").strip()
    if not name or not secret or len(name) > MAX_NAME_CHARS or len(secret) > MAX_SECRET_CHARS:
        return _login_page(name, "请填写姓名和一次性登录码（或密码）。", 400, next_url)
    s, settings = _services(), _settings()
    failures_key = s.keys.login_failures(name)
    if int(s.redis.data.get(failures_key) or 0) >= settings.login_attempts:
        # Checked before the code is tried, so a locked-out guesser cannot burn a real code.
        log.warning("dashboard: login for %r refused: locked out after failed attempts", name)
        return _login_page(name, f"登录失败次数过多，请{settings.lockout_minutes:g}分钟后再试。", 429, next_url)
    record = s.staff.use_login_code(name, secret) or s.staff.check_password(name, secret)
    if record is None:
        pipe = s.redis.data.pipeline()
        # SET NX EX then INCR in one MULTI: the counter always has its TTL, so a crash between
        # the two steps can never lock a name out for good.
        pipe.set(failures_key, 0, nx=True, ex=int(settings.lockout_minutes * 60))
        pipe.incr(failures_key)
        pipe.execute()
        log.info("dashboard: failed login for %r from %s", name, request.remote_addr)
        return _login_page(name, "姓名或登录码/密码不正确。登录码只能使用一次。", 401, next_url)
    s.redis.data.delete(failures_key)
    _start_session(record)
    log.info("dashboard: %s (%s) logged in", record.name, record.id)
    return redirect(next_url or url_for(".tickets"))


def _login_page(name: str, error: str, status: int, next_url: str | None):
    return render_template("dashboard/login.html", name=name[:MAX_NAME_CHARS], error=error, next=next_url), status


def _start_session(record) -> None:
    s = _services()
    old = session.get("sid")
    if isinstance(old, str):
        s.redis.data.delete(s.keys.dashboard_session(old))
    sid = secrets.token_urlsafe(32)
    s.redis.data.set(s.keys.dashboard_session(sid), record.id, ex=int(_settings().session_hours * 3600))
    # A fresh session and CSRF token at login: nothing planted before login survives it.
    session.clear()
    session.permanent = True
    session["sid"] = sid
    session["csrf"] = secrets.token_urlsafe(32)


@bp.post("/logout")
def logout():
    s = _services()
    sid = session.get("sid")
    if isinstance(sid, str):
        s.redis.data.delete(s.keys.dashboard_session(sid))
    session.clear()
    flash("您已退出登录。")
    return redirect(url_for(".login"))


# --- the ticket list ----------------------------------------------------------------------------

def default_view(staff) -> str:
    return "intake" if staff.role == "intake" else "unit"  # as /list without arguments


def is_overdue(ticket: Ticket, now: float) -> bool:
    """Not accepted within the response deadline: the same rule as the ``overdue`` view and /list
    (the 24-hour promise is met by 受理; a ticket being mediated is not "late")."""
    return ticket.state == "submitted" and 0 < ticket.response_due < now


def category_labels(config: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c.get("label", c["id"]) for c in config["routing"].get("categories") or [] if "id" in c}


@bp.get("/")
def index():
    return redirect(url_for(".tickets"))


@bp.get("/tickets")
def tickets():
    s, staff = _services(), g.staff
    args = request.args
    view = args.get("view") or default_view(staff)
    unit = args.get("unit", "")
    state = args.get("state", "")
    overdue = args.get("overdue", "")
    if view not in operator.VIEWS:
        bad_request("未知的列表。")
    if unit and unit not in s.directory.units:
        bad_request("未知的单位。")
    if state and state not in STATE_NAMES:
        bad_request("未知的状态。")
    if overdue not in ("", "1"):
        bad_request("“只看超期”只能勾选或不勾选。")
    now = s.clock()
    labels = category_labels(s.config)
    rows = []
    for ticket in operator.visible_tickets(handler_context(), staff, view):
        late = is_overdue(ticket, now)
        if (unit and ticket.unit != unit) or (state and ticket.state != state) or (overdue and not late):
            continue
        rows.append({"no": ticket.no, "state": STATE_NAMES.get(ticket.state, ticket.state),
                     "unit": s.directory.unit_name(ticket.unit), "category": labels.get(ticket.category, ticket.category),
                     "merchant": ticket.merchant_name, "due": ticket.response_due, "overdue": late})
    units = [(u.id, u.name) for u in s.directory.units.values()]
    return render_template("dashboard/tickets.html", rows=rows, views=operator.VIEWS, view=view, units=units,
                           unit=unit, states=STATE_NAMES, state=state, overdue=overdue)


@bp.get("/find")
def find():
    """Jump to a ticket by number (the work lists hold open tickets; finished ones are found here)."""
    raw = request.args.get("no", "").strip()
    no = normalise_ticket_no(raw[:40], _services().config["tickets"]["prefix"])
    if not TICKET_NO.match(no):
        bad_request("工单号应形如 LZ-20261203-0001，也可只写 20261203-1。")
    return redirect(url_for(".ticket", no=no))


# --- one ticket ---------------------------------------------------------------------------------

def visible_ticket(raw_no: str) -> Ticket:
    """The ticket if it exists (404) and this staff member may see it (403)."""
    s = _services()
    no = normalise_ticket_no(raw_no[:40], s.config["tickets"]["prefix"])
    if not TICKET_NO.match(no):
        abort(404)
    ticket = s.store.load_ticket(no)
    if ticket is None:
        abort(404)
    if not operator.can_see(handler_context(), g.staff, ticket):
        log.warning("dashboard: %s %s may not see %s", g.staff.id, g.staff.name, no)
        abort(403)
    return ticket


def is_mediator(staff, ticket: Ticket) -> bool:
    return (bool(ticket.mediator_id) and ticket.mediator_id == staff.id) or (
        bool(staff.openid) and staff.openid == ticket.mediator)


def may_see_phone(staff, ticket: Ticket) -> bool:
    """The consumer's full number is for whoever calls them back: intake staff (接诉员), staff of
    the handling unit and the ticket's mediator. Leaders, admins and the mobile team (unless they
    mediate it) see it masked, as every WeChat answer does."""
    if is_mediator(staff, ticket):
        return True
    return staff.role == "intake" or (staff.role == "unit" and staff.unit == ticket.unit)


def offered_actions(staff, ticket: Ticket) -> list[dict[str, Any]]:
    """The forms for this staff member and this ticket. Only a convenience: a form not offered
    can still be posted, and operator.execute then refuses it with its own answer."""
    forms = []
    for action in ACTIONS.values():
        command = COMMANDS.get(action.command)
        if command is None or not command.allows(staff.role):
            continue
        if action.trigger and not may(ticket, action.trigger):
            continue
        fields = [{"name": f.name, "label": f.label, "kind": f.kind, "required": f.required,
                   "options": _choices(f.choices) if f.kind == "select" else []} for f in action.fields]
        forms.append({"name": action.name, "label": action.label, "help": command.help, "fields": fields})
    return forms


def timeline_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        command = COMMANDS.get(entry.get("action", ""))
        what = command.alias if command else operator.ACTION_NAMES.get(entry.get("action", ""), entry.get("action", ""))
        refused = entry.get("result") not in (None, "", "ok")
        detail = entry.get("detail", "")
        if entry.get("action") == "state":  # "submitted → accepted" from handlers/trail.py, in Chinese
            detail = " → ".join(STATE_NAMES.get(part.strip(), part.strip()) for part in detail.split("→"))
        rows.append({"at": entry.get("at"), "who": entry.get("name") or entry.get("actor", ""), "what": what,
                     "detail": detail, "refused": refused, "reason": entry.get("reason", "")})
    return rows


@bp.get("/tickets/<no>")
def ticket(no: str):
    s, staff = _services(), g.staff
    t = visible_ticket(no)
    labels = category_labels(s.config)
    candidates = []
    if t.facts:
        # Not stored with the ticket: the router is deterministic, so routing the facts again
        # shows what it weighed (with the table as configured now).
        route = s.router.route(t.facts)
        candidates = [(labels.get(cid, cid), score) for cid, score in route.candidates]
    transcript = [dict(entry, who=ROLE_LABELS.get(entry.get("role", ""), entry.get("role", "")))
                  for entry in s.store.transcript(t.no)]
    return render_template(
        "dashboard/ticket.html", t=t, state_name=STATE_NAMES.get(t.state, t.state),
        unit_name=s.directory.unit_name(t.unit), category=labels.get(t.category, t.category),
        transferred_from=s.directory.unit_name(t.transferred_from) if t.transferred_from else "",
        escalated=ESCALATION_LEVELS.get(t.escalated, t.escalated),
        phone=t.phone if may_see_phone(staff, t) else mask_phone(t.phone) if t.phone else "",
        candidates=candidates, overdue=is_overdue(t, s.clock()), mediator=mediator_name(t),
        evidence=s.store.ticket_evidence(t.no), timeline=timeline_rows(s.audit.timeline(t.no)),
        transcript=transcript, settlement=s.store.settlement(t.no), forms=offered_actions(staff, t),
    )


def mediator_name(ticket: Ticket) -> str:
    s = _services()
    record = s.staff.get(ticket.mediator_id) if ticket.mediator_id else None
    record = record or s.directory.staff_for(ticket.mediator)
    return record.name if record else ("已指派" if ticket.mediator else "")


@bp.get("/tickets/<no>/evidence/<media_id>")
def evidence(no: str, media_id: str):
    """An evidence photo of a ticket this staff member may see; only files the ticket lists."""
    t = visible_ticket(no)
    if media_id not in t.photos:
        abort(404)
    record = _services().store.media(media_id)
    if not record or not record.get("path"):
        abort(404)
    # send_from_directory refuses any path that leaves the data directory.
    return send_from_directory(data_dir(_services().config), record["path"],
                               mimetype=record.get("content_type") or None)


@bp.post("/tickets/<no>/actions")
def act(no: str):
    """Run one action form as an operator command line: operator.execute checks the role, runs
    it and writes the audit entry; its Chinese answer comes back as the flash message."""
    s, staff = _services(), g.staff
    action = ACTIONS.get(request.form.get("action", ""))
    if action is None or action.command not in COMMANDS:
        bad_request("未知的操作。")
    t = visible_ticket(no)
    words = [action.command, t.no] + ([action.fixed] if action.fixed else [])
    for field in action.fields:
        value = request.form.get(field.name, "").strip()
        if not value:
            if field.required:
                bad_request(f"请填写“{field.label}”。")
            continue
        if len(value) > MAX_TEXT_CHARS:
            abort(413)
        if field.kind == "select" and value not in dict(_choices(field.choices)):
            bad_request(f"请从列表中选择“{field.label}”。")
        if field is not action.fields[-1] and any(ch.isspace() for ch in value):
            bad_request(f"“{field.label}”不能包含空格。")  # it would shift the words after it
        words.append(value)
    line = " ".join(words)
    if len(line) > operator.MAX_LINE_CHARS:
        abort(413)  # execute would cut the line short: refuse rather than store half a proposal
    ctx = handler_context()
    answer = operator.execute(ctx, staff, line)
    # No incoming WeChat message caused this: queue the outbox as a sweep would, never send here.
    s.outbound.enqueue_all(ctx.outbox)
    flash(answer)
    return redirect(url_for(".ticket", no=t.no))

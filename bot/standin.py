"""A local stand-in for WeChat's HTTP API (https://api.weixin.qq.com/cgi-bin/...).

There is no internet in the demo or the tests, so this plays the few endpoints the bot uses over
real loopback HTTP. The real wechatpy client talks to it unchanged: point the client's
``API_BASE_URL`` at ``StandIn.base_url``. Nothing is mocked inside the bot, so timeouts, HTTP
errors and WeChat errcodes reach the bot exactly as they would in production.

Endpoints played (behaviour follows docs WECHAT.md §3 / §5.4):

    GET  token                  client_credential grant; every fetch issues a new token, the
                                previous one stays valid (the platform's refresh grace), older
                                ones answer 40001.
    POST message/custom/send    客服消息; recorded, {"errcode":0,"errmsg":"ok"}.
    POST message/template/send  recorded, answers a msgid.
    GET  media/get              bytes for registered media; unknown id → 40007 as text/plain.
    POST qrcode/create          recorded, answers ticket / expire_seconds / url.

Fault injection (``StandIn.inject`` or ``POST /_standin/faults``) queues per-endpoint answers —
a WeChat errcode, an HTTP status, a delay or a hang — consumed in order, so a test can say
"first call 40001, second ok". Every call is recorded (thread-safe) and can be read from Python
or over HTTP (``/_standin/...``), so a demo driver or an RQ worker in another process can
inspect and steer the same stand-in. ``RemoteStandIn`` is the HTTP client for that.

Run in the foreground with ``python -m bot.standin --port 8081``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import logging
import signal
import threading
import time
from collections import deque
from typing import Any

import requests
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

# A fixed name rather than __name__: under ``python -m bot.standin`` __name__ is "__main__",
# and main() needs to find this logger to turn the per-call lines on.
logger = logging.getLogger("bot.standin")

ENDPOINTS = (
    "token",
    "message/custom/send",
    "message/template/send",
    "media/get",
    "qrcode/create",
)
"""Endpoint names (path below /cgi-bin/) that are played and accept faults."""

_METHODS = {
    "token": "GET",
    "message/custom/send": "POST",
    "message/template/send": "POST",
    "media/get": "GET",
    "qrcode/create": "POST",
}

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40007: "invalid media_id",
    40013: "invalid appid",
    40014: "invalid access_token",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
    48001: "api unauthorized",
}
"""The platform's errmsg for the codes we answer, so injected faults read like real ones."""

# WeChat labels its JSON this way (not the usual charset=); wechatpy ignores the header anyway.
JSON_CONTENT_TYPE = "application/json; encoding=utf-8"

TOKEN_EXPIRES_IN = 7200

HANG_LIMIT_SECONDS = 3600.0
"""A hang ends on release/stop; this bound only keeps a forgotten thread from living forever."""

QR_TEMP_DEFAULT_SECONDS = 60
QR_TEMP_MAX_SECONDS = 30 * 24 * 3600
_QR_TEMP_ACTIONS = ("QR_SCENE", "QR_STR_SCENE")
_QR_PERM_ACTIONS = ("QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE")


def fake_jpeg(media_id: str) -> bytes:
    """Deterministic JPEG-looking bytes for a media id (SOI + JFIF header + digest + EOI).

    Not a decodable picture; it only has to look like one to code that sniffs magic bytes and
    be different per id, so a test can tell which media was downloaded.
    """
    digest = hashlib.sha256(media_id.encode("utf-8")).digest()
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + digest + b"\xff\xd9"


def normalize_endpoint(endpoint: str) -> str:
    """Accept "message/custom/send", "/cgi-bin/message/custom/send" or a full URL path."""
    name = endpoint.strip().split("?", 1)[0].strip("/")
    if "cgi-bin/" in name:
        name = name.split("cgi-bin/", 1)[1]
    return name


@dataclasses.dataclass
class Fault:
    """One queued misbehaviour for an endpoint.

    ``times`` is how many more calls it applies to; ``None`` means forever (it then blocks the
    faults queued behind it). ``hang`` waits until ``release_hangs()`` or ``stop()``; a released
    hang then carries on with the rest of the fault (errcode / http_status) or a normal answer,
    which plays "slow, but WeChat did deliver it".
    """

    errcode: int | None = None
    errmsg: str | None = None
    http_status: int | None = None
    delay: float = 0.0
    hang: bool = False
    times: int | None = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Answer:
    """What the stand-in answers: JSON payload or raw bytes, plus the status."""

    status: int = 200
    payload: dict[str, Any] | None = None
    data: bytes | None = None
    content_type: str = JSON_CONTENT_TYPE
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What goes in the call record: the JSON itself, or a description of the bytes."""
        if self.payload is not None:
            return copy.deepcopy(self.payload)
        return {"bytes": len(self.data or b""), "content_type": self.content_type}

    def to_response(self) -> Response:
        if self.payload is not None:
            body = json.dumps(self.payload, ensure_ascii=False).encode("utf-8")
        else:
            body = self.data or b""
        return Response(body, status=self.status, content_type=self.content_type, headers=self.headers)


def _error(errcode: int, errmsg: str | None = None, content_type: str = JSON_CONTENT_TYPE) -> _Answer:
    return _Answer(
        payload={"errcode": errcode, "errmsg": errmsg or ERRMSG.get(errcode, "stand-in injected error")},
        content_type=content_type,
    )


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug logs every request at INFO on the "werkzeug" logger; send it to DEBUG instead.

    The stand-in logs its own one line per call, so werkzeug's access log would only be noise in
    test and demo output.
    """

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 (werkzeug's name)
        logger.debug("werkzeug %s: " + message, type, *args)


class StandIn:
    """The stand-in: a Flask app plus a threaded loopback server, and the Python-side controls.

    Use as a context manager (``with StandIn() as wx:``) or call ``start()`` / ``stop()``.
    All state lives on the instance, guarded by one lock, because the server answers each request
    on its own thread while the test thread reads records and injects faults.
    """

    def __init__(
        self,
        appid: str = "wxdemo",
        secret: str = "demosecret",
        host: str = "127.0.0.1",
        port: int = 0,
        media: dict[str, bytes] | None = None,
        any_media: bool = False,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.host = host
        self.port = port
        # any_media=True serves fake_jpeg(id) for every id (handy for a free-form demo);
        # the default answers 40007 for unknown ids, like the real platform.
        self.any_media = any_media

        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._seq = 0
        self._faults: dict[str, deque[Fault]] = {}
        self._media: dict[str, tuple[bytes, str]] = {}
        for media_id, data in (media or {}).items():
            self._media[media_id] = (data, "image/jpeg")
        self._tokens: list[str] = []  # every token issued, oldest first
        self._expired: set[str] = set()
        self._token_counter = 0
        self._msgid = 1000
        self._qr_counter = 0

        # Hangs wait on the current generation's event; release_hangs() sets it and starts a new
        # generation, so hangs queued later are not released by an old release.
        self._release = threading.Event()
        self._stopping = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None

        self.app = self._create_app()

    # ------------------------------------------------------------------ runner

    def start(self) -> "StandIn":
        """Serve in a daemon thread. With port 0 a free port is picked; read it from .port."""
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a StandIn can be started once")
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietRequestHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # Short poll so stop() returns fast; shutdown() is only noticed between polls.
            kwargs={"poll_interval": 0.05},
            name=f"standin:{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("stand-in serving on %s", self.root_url)
        return self

    def stop(self) -> None:
        """Stop serving. Does not wait for hanging/delayed requests: they are woken and get 503."""
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()
        self.release_hangs()
        # Request threads are daemons (werkzeug's ThreadedWSGIServer), so shutdown() only waits
        # for the accept loop, never for a request that is still sleeping.
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.debug("stand-in on port %s stopped", self.port)

    def __enter__(self) -> "StandIn":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        # A wildcard bind address is not something a client can connect to.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"

    @property
    def base_url(self) -> str:
        """Value for wechatpy's API_BASE_URL (trailing slash matters: wechatpy concatenates)."""
        return self.root_url + "cgi-bin/"

    @property
    def control_url(self) -> str:
        return self.root_url + "_standin/"

    # ------------------------------------------------------------- faults

    def inject(
        self,
        endpoint: str,
        errcode: int | None = None,
        http_status: int | None = None,
        delay: float = 0,
        hang: bool = False,
        times: int | None = 1,
        errmsg: str | None = None,
    ) -> Fault:
        """Queue a fault for the next ``times`` calls of ``endpoint`` (None = every call).

        Only a delay (no errcode/http_status) means "slow but normal answer".
        """
        name = normalize_endpoint(endpoint)
        if name not in ENDPOINTS:
            # A typo would otherwise queue a fault that never fires and the test would pass for
            # the wrong reason.
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None (forever)")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        if errcode is None and http_status is None and not delay and not hang:
            raise ValueError("a fault needs errcode, http_status, delay or hang")
        fault = Fault(
            errcode=errcode, errmsg=errmsg, http_status=http_status,
            delay=float(delay), hang=bool(hang), times=times,
        )
        with self._lock:
            self._faults.setdefault(name, deque()).append(fault)
        return fault

    def pending_faults(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {name: [f.to_dict() for f in q] for name, q in self._faults.items() if q}

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def release_hangs(self) -> None:
        """Wake every request that is hanging now; they carry on (or get 503 if stopping)."""
        with self._lock:
            event, self._release = self._release, threading.Event()
        event.set()

    def _take_fault(self, name: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(name)
            if not queue:
                return None
            fault = queue[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.popleft()
            # A copy: the record must show the fault as applied, not the live, decrementing one.
            return dataclasses.replace(fault)

    # ------------------------------------------------------------- tokens & media

    @property
    def current_token(self) -> str | None:
        with self._lock:
            return self._tokens[-1] if self._tokens else None

    def expire_tokens(self) -> None:
        """Make every token issued so far answer 42001 (access_token expired)."""
        with self._lock:
            self._expired.update(self._tokens)

    def add_media(self, media_id: str, data: bytes | None = None, content_type: str = "image/jpeg") -> bytes:
        """Register media for media/get; data defaults to fake_jpeg(media_id). Returns the bytes."""
        if data is None:
            data = fake_jpeg(media_id)
        with self._lock:
            self._media[media_id] = (data, content_type)
        return data

    # ------------------------------------------------------------- records

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Every call (oldest first), optionally of one endpoint. Copies, safe to keep.

        Keys: seq, time, method, endpoint, params, body, status (None while still pending),
        response (JSON answered, or {"bytes", "content_type"}), fault (dict or None).
        """
        name = normalize_endpoint(endpoint) if endpoint else None
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if name is None or c["endpoint"] == name]

    def sent_texts(self, touser: str | None = None) -> list[tuple[str, str]]:
        """(touser, content) of text 客服消息 the platform accepted (errcode 0), in order."""
        out = []
        for call in self._accepted("message/custom/send"):
            body = call["body"]
            if body.get("msgtype") != "text":
                continue
            if touser is not None and body.get("touser") != touser:
                continue
            out.append((body.get("touser"), (body.get("text") or {}).get("content")))
        return out

    def sent_messages(self, touser: str | None = None) -> list[dict[str, Any]]:
        """Every accepted 客服消息 body (any msgtype), for tests that send images etc."""
        return [
            c["body"] for c in self._accepted("message/custom/send")
            if touser is None or c["body"].get("touser") == touser
        ]

    def templates(self) -> list[dict[str, Any]]:
        """Accepted template messages: the JSON body sent plus the "msgid" answered."""
        return [dict(c["body"], msgid=c["response"]["msgid"]) for c in self._accepted("message/template/send")]

    def qrcodes(self) -> list[dict[str, Any]]:
        """Accepted qrcode/create calls: the body sent plus the "ticket" answered."""
        return [dict(c["body"], ticket=c["response"]["ticket"]) for c in self._accepted("qrcode/create", key="ticket")]

    @property
    def token_fetches(self) -> int:
        """Tokens issued since the last clear() (failed fetches are in calls("token"))."""
        return len(self._accepted("token", key="access_token"))

    def clear(self) -> None:
        """Forget calls and pending faults, and release hangs. Tokens and media stay valid, so
        clients holding a cached token keep working across a reset."""
        with self._lock:
            self._calls.clear()
            self._faults.clear()
        self.release_hangs()

    def status(self) -> dict[str, Any]:
        with self._lock:
            tokens = list(self._tokens)
            valid = [t for t in tokens[-2:] if t not in self._expired]
        return {
            "appid": self.appid,
            "token_fetches": self.token_fetches,
            "current_token": tokens[-1] if tokens else None,
            "valid_tokens": valid,
            "pending_faults": self.pending_faults(),
        }

    def _accepted(self, name: str, key: str = "errcode") -> list[dict[str, Any]]:
        """Calls answered 200 with errcode 0 — or, for endpoints whose success carries no
        errcode (token, qrcode/create), with ``key`` present in the answer."""
        calls = self.calls(name)
        if key == "errcode":
            return [c for c in calls if c["status"] == 200 and (c["response"] or {}).get("errcode") == 0]
        return [c for c in calls if c["status"] == 200 and key in (c["response"] or {})]

    # ------------------------------------------------------------- the Flask app

    def _create_app(self) -> Flask:
        app = Flask("bot.standin")

        @app.route("/cgi-bin/<path:endpoint>", methods=["GET", "POST"])
        def cgi_bin(endpoint: str) -> Response:
            return self._serve(normalize_endpoint(endpoint))

        @app.get("/_standin/sent")
        def control_sent() -> Response:
            touser = request.args.get("touser")
            return _json_response([{"touser": u, "content": c} for u, c in self.sent_texts(touser)])

        @app.get("/_standin/calls")
        def control_calls() -> Response:
            return _json_response(self.calls(request.args.get("endpoint")))

        @app.get("/_standin/templates")
        def control_templates() -> Response:
            return _json_response(self.templates())

        @app.get("/_standin/status")
        def control_status() -> Response:
            return _json_response(self.status())

        @app.get("/_standin/faults")
        def control_faults_list() -> Response:
            return _json_response(self.pending_faults())

        @app.post("/_standin/faults")
        def control_faults() -> Response:
            spec = request.get_json(force=True, silent=True)
            if not isinstance(spec, dict) or "endpoint" not in spec:
                return _json_response({"ok": False, "error": "JSON object with 'endpoint' required"}, 400)
            allowed = {"endpoint", "errcode", "errmsg", "http_status", "delay", "hang", "times"}
            unknown = set(spec) - allowed
            if unknown:
                return _json_response({"ok": False, "error": f"unknown keys {sorted(unknown)}"}, 400)
            # Absent "times" means once, like inject(); an explicit null means forever.
            try:
                fault = self.inject(
                    spec["endpoint"],
                    errcode=spec.get("errcode"),
                    http_status=spec.get("http_status"),
                    delay=spec.get("delay") or 0,
                    hang=bool(spec.get("hang", False)),
                    times=spec.get("times", 1),
                    errmsg=spec.get("errmsg"),
                )
            except (ValueError, TypeError) as exc:
                return _json_response({"ok": False, "error": str(exc)}, 400)
            return _json_response({"ok": True, "fault": fault.to_dict()})

        @app.post("/_standin/reset")
        def control_reset() -> Response:
            self.clear()
            return _json_response({"ok": True})

        @app.post("/_standin/release")
        def control_release() -> Response:
            self.release_hangs()
            return _json_response({"ok": True})

        @app.post("/_standin/expire_tokens")
        def control_expire_tokens() -> Response:
            self.expire_tokens()
            return _json_response({"ok": True})

        @app.post("/_standin/media")
        def control_media() -> Response:
            media_id = request.args.get("media_id")
            if not media_id:
                return _json_response({"ok": False, "error": "?media_id= required"}, 400)
            data = request.get_data() or None
            self.add_media(media_id, data, request.args.get("content_type", "image/jpeg"))
            return _json_response({"ok": True})

        return app

    def _serve(self, name: str) -> Response:
        body = _parse_body(request.get_data())
        call = self._begin_call(name, request.method, request.args.to_dict(), body)
        fault = self._take_fault(name) if name in ENDPOINTS else None
        answer = _Answer(status=500, data=b"stand-in error", content_type="text/plain")
        try:
            answer = self._answer(name, request.method, call["params"], body, fault)
        finally:
            self._finish_call(call, answer, fault)
        return answer.to_response()

    def _answer(self, name: str, method: str, params: dict[str, str], body: Any, fault: Fault | None) -> _Answer:
        if fault is not None:
            if fault.hang:
                with self._lock:
                    event = self._release
                event.wait(HANG_LIMIT_SECONDS)
            elif fault.delay:
                # Waiting on the stop event (not time.sleep) lets stop() cut delays short.
                self._stopping.wait(fault.delay)
            if self._stopping.is_set():
                return _Answer(status=503, data=b"stand-in stopped", content_type="text/plain")
            if fault.http_status is not None:
                if fault.errcode is not None:
                    answer = _error(fault.errcode, fault.errmsg)
                    answer.status = fault.http_status
                    return answer
                text = f"{fault.http_status} stand-in injected HTTP error".encode()
                return _Answer(status=fault.http_status, data=text, content_type="text/html")
            if fault.errcode is not None:
                # media/get reports errors as JSON labelled text/plain (WECHAT.md §5.4).
                ctype = "text/plain" if name == "media/get" else JSON_CONTENT_TYPE
                return _error(fault.errcode, fault.errmsg, ctype)

        if name not in ENDPOINTS:
            logger.warning("stand-in: %s %s is not played", method, name)
            return _Answer(
                status=404,
                payload={"errcode": -1, "errmsg": f"stand-in does not play cgi-bin/{name}"},
            )
        if method != _METHODS[name]:
            return _error(43001 if _METHODS[name] == "GET" else 43002)
        if name == "token":
            return self._token(params)
        bad_token = self._check_token(params)
        if bad_token is not None:
            if name == "media/get":
                bad_token.content_type = "text/plain"
            return bad_token
        handler = {
            "message/custom/send": self._custom_send,
            "message/template/send": self._template_send,
            "media/get": self._media_get,
            "qrcode/create": self._qrcode_create,
        }[name]
        return handler(params, body)

    # ------------------------------------------------------------- endpoint handlers

    def _token(self, params: dict[str, str]) -> _Answer:
        if params.get("grant_type") != "client_credential":
            return _error(40002)
        if not params.get("appid"):
            return _error(41002)
        if params["appid"] != self.appid:
            return _error(40013)
        if not params.get("secret"):
            return _error(41004)
        if params["secret"] != self.secret:
            return _error(40125)
        with self._lock:
            self._token_counter += 1
            token = f"TOKEN_{self._token_counter}"
            self._tokens.append(token)
        return _Answer(payload={"access_token": token, "expires_in": TOKEN_EXPIRES_IN})

    def _check_token(self, params: dict[str, str]) -> _Answer | None:
        token = params.get("access_token")
        if not token:
            return _error(41001)
        with self._lock:
            if token in self._expired:
                return _error(42001)
            # Re-fetching invalidates the previous token after a grace; we keep exactly one
            # previous token valid, which is enough to exercise the refresh races.
            if token not in self._tokens[-2:]:
                return _error(40001)
        return None

    def _custom_send(self, params: dict[str, str], body: Any) -> _Answer:
        if not isinstance(body, dict) or not body.get("msgtype"):
            return _error(47001)
        if not body.get("touser"):
            return _error(40003)
        if body["msgtype"] == "text" and not isinstance((body.get("text") or {}).get("content"), str):
            return _error(47001)
        return _Answer(payload={"errcode": 0, "errmsg": "ok"})

    def _template_send(self, params: dict[str, str], body: Any) -> _Answer:
        if not isinstance(body, dict) or not body.get("template_id"):
            return _error(47001)
        if not body.get("touser"):
            return _error(40003)
        with self._lock:
            self._msgid += 1
            msgid = self._msgid
        return _Answer(payload={"errcode": 0, "errmsg": "ok", "msgid": msgid})

    def _media_get(self, params: dict[str, str], body: Any) -> _Answer:
        media_id = params.get("media_id", "")
        with self._lock:
            found = self._media.get(media_id)
        if found is None and self.any_media and media_id:
            found = (fake_jpeg(media_id), "image/jpeg")
        if found is None:
            return _error(40007, content_type="text/plain")
        data, ctype = found
        ext = "jpg" if ctype == "image/jpeg" else ctype.rsplit("/", 1)[-1]
        return _Answer(
            data=data, content_type=ctype,
            headers={"Content-disposition": f'attachment; filename="{media_id}.{ext}"'},
        )

    def _qrcode_create(self, params: dict[str, str], body: Any) -> _Answer:
        if not isinstance(body, dict):
            return _error(47001)
        action = body.get("action_name")
        if action not in _QR_TEMP_ACTIONS + _QR_PERM_ACTIONS:
            return _error(47001)
        with self._lock:
            self._qr_counter += 1
            n = self._qr_counter
        payload: dict[str, Any] = {"ticket": f"STANDIN_QR_TICKET_{n}"}
        if action in _QR_TEMP_ACTIONS:
            # Temporary codes default to 60 s and are capped at 30 days (WECHAT.md §3.5).
            seconds = body.get("expire_seconds") or QR_TEMP_DEFAULT_SECONDS
            payload["expire_seconds"] = min(int(seconds), QR_TEMP_MAX_SECONDS)
        payload["url"] = f"http://weixin.qq.com/q/standin{n}"
        return _Answer(payload=payload)

    # ------------------------------------------------------------- recording

    def _begin_call(self, name: str, method: str, params: dict[str, str], body: Any) -> dict[str, Any]:
        # Recorded on arrival (status None) so a test can see a request that is still hanging.
        with self._lock:
            self._seq += 1
            call = {
                "seq": self._seq, "time": time.time(), "method": method, "endpoint": name,
                "params": params, "body": copy.deepcopy(body), "status": None, "response": None,
                "fault": None,
            }
            self._calls.append(call)
        return call

    def _finish_call(self, call: dict[str, Any], answer: _Answer, fault: Fault | None) -> None:
        with self._lock:
            call["status"] = answer.status
            call["response"] = answer.summary()
            call["fault"] = fault.to_dict() if fault else None
            call["duration"] = round(time.time() - call["time"], 3)
        logger.debug(
            "%s %s%s -> %s %s%s", call["method"], call["endpoint"],
            " " + _short(call["body"]) if call["body"] is not None else "",
            answer.status, _short(call["response"]), " [fault]" if fault else "",
        )


class RemoteStandIn:
    """Steer a StandIn running in another process through its /_standin/ endpoints.

    Same method names as StandIn, so a demo driver or worker-side check reads the same either way.
    """

    def __init__(self, root_url: str, timeout: float = 5) -> None:
        # Accept the root, the base_url (…/cgi-bin/) or the control URL.
        root = root_url.split("/cgi-bin", 1)[0].split("/_standin", 1)[0].rstrip("/")
        self.control_url = root + "/_standin/"
        self.timeout = timeout
        self._http = requests.Session()
        # Loopback traffic must never go through an HTTP(S)_PROXY from the environment.
        self._http.trust_env = False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RemoteStandIn":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        res = self._http.request(method, self.control_url + path, timeout=self.timeout, **kwargs)
        res.raise_for_status()
        return res.json()

    def sent_texts(self, touser: str | None = None) -> list[tuple[str, str]]:
        params = {"touser": touser} if touser is not None else {}
        return [(m["touser"], m["content"]) for m in self._call("GET", "sent", params=params)]

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "calls", params={"endpoint": endpoint} if endpoint else {})

    def templates(self) -> list[dict[str, Any]]:
        return self._call("GET", "templates")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "status")

    @property
    def token_fetches(self) -> int:
        return self.status()["token_fetches"]

    def inject(
        self,
        endpoint: str,
        errcode: int | None = None,
        http_status: int | None = None,
        delay: float = 0,
        hang: bool = False,
        times: int | None = 1,
        errmsg: str | None = None,
    ) -> dict[str, Any]:
        spec = {"endpoint": endpoint, "errcode": errcode, "errmsg": errmsg, "http_status": http_status,
                "delay": delay, "hang": hang, "times": times}
        return self._call("POST", "faults", json=spec)["fault"]

    def clear(self) -> None:
        self._call("POST", "reset")

    def release_hangs(self) -> None:
        self._call("POST", "release")

    def expire_tokens(self) -> None:
        self._call("POST", "expire_tokens")

    def add_media(self, media_id: str, data: bytes | None = None, content_type: str = "image/jpeg") -> None:
        self._call("POST", "media", params={"media_id": media_id, "content_type": content_type}, data=data or b"")


def _parse_body(raw: bytes) -> Any:
    """JSON body if it is JSON (wechatpy sends UTF-8 JSON with no Content-Type), else text."""
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", "replace")


def _json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json")


def _short(response: Any, limit: int = 120) -> str:
    text = json.dumps(response, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.standin",
        description="Serve a local stand-in for WeChat's cgi-bin API (no internet needed).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--appid", default="wxdemo")
    parser.add_argument("--secret", default="demosecret")
    parser.add_argument("--any-media", action="store_true",
                        help="serve fake JPEG bytes for every media_id instead of answering 40007")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # The per-call lines are DEBUG so library use stays quiet; in the foreground we want them.
    logger.setLevel(logging.DEBUG)
    # ...but not werkzeug's access lines, which our handler also routes to this logger.
    logger.addFilter(lambda record: not record.getMessage().startswith("werkzeug "))

    standin = StandIn(args.appid, args.secret, args.host, args.port, any_media=args.any_media)
    standin.start()
    # On stdout and flushed, so a driver that started us with --port 0 can read the address.
    print(f"stand-in serving WeChat API at {standin.base_url} (control: {standin.control_url})", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()

"""The WeChat edge: signature, safe-mode crypto, parsing, de-duplication, the passive reply.

Everything wechatpy can throw on hostile input is caught here: protocol abuse gets a 4xx,
a message we cannot use gets "success" (WeChat must not retry it), never a 500. No
outbound HTTP happens in the request: other parties' messages are queued for the worker.
"""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, Response, current_app, request
from wechatpy import parse_message
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from bot.crypto import BadSignature, CannotDecrypt
from handlers import dispatch
from handlers.base import Context, Incoming
from storage.store import PENDING

log = logging.getLogger(__name__)

bp = Blueprint("wechat", __name__)

# XML 1.0 forbids these; WeChat does send some (e.g. 0x1D, WeRoBot#420), and expat rejects them.
ILLEGAL_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
SUCCESS = "success"


def _plain(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@bp.get("/wechat")
def verify() -> Response:
    """URL verification when the address is saved in the WeChat console."""
    services = current_app.extensions["bot"]
    args = request.args
    try:
        check_signature(services.config["wechat"]["token"], args.get("signature", ""),
                        args.get("timestamp", ""), args.get("nonce", ""))
    except InvalidSignatureException:
        log.warning("GET /wechat rejected: bad signature from %s", request.remote_addr)
        return _plain("invalid signature", 403)
    return _plain(args.get("echostr", ""))


@bp.post("/wechat")
def receive() -> Response:
    services = current_app.extensions["bot"]
    args = request.args
    max_body = int(services.config["webhook"]["max_body_bytes"])
    if (request.content_length or 0) > max_body:
        log.warning("POST /wechat rejected: body of %s bytes over the cap", request.content_length)
        return _plain("body too large", 413)
    try:
        check_signature(services.config["wechat"]["token"], args.get("signature", ""),
                        args.get("timestamp", ""), args.get("nonce", ""))
    except InvalidSignatureException:
        log.warning("POST /wechat rejected: bad signature from %s", request.remote_addr)
        return _plain("invalid signature", 403)

    raw = request.get_data(cache=False)
    if len(raw) > max_body:
        return _plain("body too large", 413)
    body = raw.decode("utf-8", errors="replace")
    if "<!DOCTYPE" in body.upper():
        log.warning("POST /wechat rejected: DOCTYPE in body")
        return _plain("bad request", 400)

    # Safe and compatible mode both say encrypt_type=aes; compatible bodies also carry the
    # plaintext fields, but only the signed Encrypt part is trusted.
    reply_key = None
    if args.get("encrypt_type", "raw") == "aes":
        if services.crypto is None:
            log.warning("POST /wechat rejected: encrypted message but no encoding_aes_key configured")
            return _plain("bad request", 400)
        try:
            body, reply_key = services.crypto.decrypt(body, args.get("msg_signature", ""),
                                                      args.get("timestamp", ""), args.get("nonce", ""))
        except BadSignature as exc:
            log.warning("POST /wechat rejected: bad msg_signature (%s)", exc)
            return _plain("invalid signature", 403)
        except CannotDecrypt as exc:
            log.warning("POST /wechat rejected: cannot decrypt with any configured key (%s)", exc)
            return _plain("bad request", 400)

    try:
        message = parse_message(ILLEGAL_XML_CHARS.sub("", body))
        incoming = to_incoming(message) if message is not None else None
    except Exception as exc:  # noqa: BLE001 - ExpatError/KeyError/ValueError/AttributeError (WECHAT.md §5.1)
        log.warning("POST /wechat rejected: unparseable body (%s: %s)", type(exc).__name__, exc)
        return _plain("bad request", 400)
    if incoming is None or not incoming.openid:
        return _plain(SUCCESS)

    reply_text = handle(services, incoming)
    if not reply_text:
        return _plain(SUCCESS)
    xml = render_reply(reply_text, message)
    if reply_key is not None:
        xml = reply_key.encrypt(xml, args.get("nonce", ""), args.get("timestamp") or None)
    return Response(xml, mimetype="application/xml")


def handle(services, incoming: Incoming) -> str:
    """Run one delivery exactly once; a re-delivery gets the first one's reply."""
    fingerprint = delivery_fingerprint(incoming)
    ttl = int(services.config["webhook"]["dedupe_ttl_seconds"])
    cached = services.store.claim_delivery(fingerprint, ttl)
    if cached is not None:
        log.info("duplicate delivery %s", fingerprint)
        return "" if cached == PENDING else cached
    ctx = Context(store=services.store, router=services.router, directory=services.directory,
                  config=services.config, clock=services.clock, staff=services.staff, audit=services.audit,
                  clocks=services.clocks)
    try:
        reply = dispatch(ctx, incoming) or ""
    except Exception:
        # Let WeChat's retry run it again rather than remember a failure; tell the person.
        services.store.forget_delivery(fingerprint)
        log.exception("handler failed for %s", fingerprint)
        from handlers.texts import SORRY

        return SORRY
    # One pipeline: the reply remembered for re-deliveries, the sender's window, the queued sends.
    services.outbound.after_message(
        incoming, ctx.outbox, also=lambda pipe: services.store.remember_reply(fingerprint, reply, ttl, pipeline=pipe))
    return reply


def delivery_fingerprint(incoming: Incoming) -> str:
    """Messages by MsgId; events by sender + CreateTime + Event + EventKey (WECHAT.md §1.3)."""
    if incoming.msg_id and incoming.kind != "event":
        return f"m:{incoming.msg_id}"
    return f"e:{incoming.openid}:{incoming.create_time}:{incoming.event}:{incoming.event_key}"


def to_incoming(message) -> Incoming:
    """wechatpy's message object → our plain record (handlers never see wechatpy)."""
    kind = message.type
    openid = message.source or ""
    common = {"openid": openid if isinstance(openid, str) else "", "create_time": _int(message, "time")}
    raw_type = str(getattr(message, "_data", {}).get("MsgType") or "").strip().lower()
    if kind == "unknown" and raw_type == "event":  # an event wechatpy has no class for
        event = str(getattr(message, "_data", {}).get("Event") or "").strip().lower()
        return Incoming(kind="event", event=event, **common)
    if kind == "event":
        event = getattr(message, "event", "") or ""
        key = getattr(message, "scene_id", None) or getattr(message, "key", None) or ""
        return Incoming(kind="event", event=str(event).lower(), event_key=str(key), **common)
    msg_id = str(_int(message, "id") or "")
    if kind == "text":
        content = message.content
        if isinstance(content, list):  # two <Content> elements (WECHAT.md §5.1): keep the first
            content = content[0] if content else ""
        return Incoming(kind="text", text=content or "", msg_id=msg_id, **common)
    if kind in ("image", "voice"):
        return Incoming(kind=kind, media_id=message.media_id or "", msg_id=msg_id, **common)
    if kind == "location":
        return Incoming(kind="location", text=getattr(message, "label", "") or "", msg_id=msg_id, **common)
    return Incoming(kind="other", msg_id=msg_id, **common)


def _int(message, attr: str) -> int:
    try:
        return int(getattr(message, attr) or 0)
    except (TypeError, ValueError):
        return 0


def render_reply(text: str, message) -> str:
    # wechatpy wraps values in CDATA without escaping: split "]]>" so the reply stays valid XML.
    safe = ILLEGAL_XML_CHARS.sub("", text).replace("]]>", "]]]]><![CDATA[>")
    return TextReply(message=message, content=safe, time=int(time.time())).render()

"""Play WeChat's side of the webhook: build, sign (and in safe mode encrypt) pushes, read replies.

Used by ``python -m bot demo`` over real HTTP and by the tests through Flask's test client
(WeRoBot's ``WeTest`` idea), so both drive the exact dispatch path production uses.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import string
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode

import xmltodict
from wechatpy.crypto import WeChatCrypto

# transport(path_with_query, body_bytes) -> (status_code, response_text)
Transport = Callable[[str, bytes], tuple[int, str]]

_msg_ids = itertools.count(int(time.time()) * 1000)


def sign(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(openid: str, content: str, msg_id: int | None = None, to: str = "gh_bureau",
             create_time: int | None = None) -> str:
    return (f"<xml><ToUserName>{cdata(to)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType>{cdata('text')}</MsgType>"
            f"<Content>{cdata(content)}</Content><MsgId>{msg_id or next(_msg_ids)}</MsgId></xml>")


def image_xml(openid: str, media_id: str, msg_id: int | None = None, to: str = "gh_bureau") -> str:
    return (f"<xml><ToUserName>{cdata(to)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{cdata('image')}</MsgType>"
            f"<PicUrl>{cdata('http://mmbiz.qpic.cn/' + media_id)}</PicUrl><MediaId>{cdata(media_id)}</MediaId>"
            f"<MsgId>{msg_id or next(_msg_ids)}</MsgId></xml>")


def event_xml(openid: str, event: str, key: str | None = None, create_time: int | None = None,
              to: str = "gh_bureau") -> str:
    key_xml = f"<EventKey>{cdata(key)}</EventKey><Ticket>{cdata('TICKET')}</Ticket>" if key is not None else ""
    return (f"<xml><ToUserName>{cdata(to)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType>{cdata('event')}</MsgType>"
            f"<Event>{cdata(event)}</Event>{key_xml}</xml>")


@dataclass
class Reply:
    status: int
    body: str
    content: str  # the text reply's Content, "" for "success"/empty

    @property
    def ok(self) -> bool:
        return self.status == 200


class WeChatSimulator:
    def __init__(self, transport: Transport, token: str, appid: str = "", encoding_aes_key: str = "",
                 path: str = "/wechat"):
        self.transport = transport
        self.token = token
        self.path = path
        self.crypto = WeChatCrypto(token, encoding_aes_key, appid) if encoding_aes_key else None

    def post_xml(self, xml: str, openid: str = "") -> Reply:
        timestamp = str(int(time.time()))
        nonce = "".join(random.choices(string.digits, k=10))
        query = {"signature": sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        if openid:
            query["openid"] = openid
        body = xml
        if self.crypto is not None:
            envelope = xmltodict.parse(self.crypto.encrypt_message(xml, nonce, timestamp))["xml"]
            query.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
            body = (f"<xml><ToUserName>{cdata('gh_bureau')}</ToUserName>"
                    f"<Encrypt>{cdata(envelope['Encrypt'])}</Encrypt></xml>")
        status, text = self.transport(f"{self.path}?{urlencode(query)}", body.encode("utf-8"))
        return Reply(status, text, self._content(status, text, nonce, timestamp))

    def _content(self, status: int, text: str, nonce: str, timestamp: str) -> str:
        if status != 200 or not text or text == "success":
            return ""
        if self.crypto is not None:
            envelope = xmltodict.parse(text)["xml"]
            text = self.crypto.decrypt_message(text, envelope["MsgSignature"], envelope["TimeStamp"],
                                               envelope["Nonce"])
        return xmltodict.parse(text)["xml"].get("Content") or ""

    # --- conveniences --------------------------------------------------------------------------
    def text(self, openid: str, content: str, **kwargs) -> Reply:
        return self.post_xml(text_xml(openid, content, **kwargs), openid)

    def image(self, openid: str, media_id: str) -> Reply:
        return self.post_xml(image_xml(openid, media_id), openid)

    def event(self, openid: str, event: str, key: str | None = None, **kwargs) -> Reply:
        return self.post_xml(event_xml(openid, event, key, **kwargs), openid)


def flask_transport(client) -> Transport:
    """Transport through a Flask test client (tests)."""

    def post(path: str, body: bytes) -> tuple[int, str]:
        response = client.post(path, data=body, content_type="text/xml")
        return response.status_code, response.get_data(as_text=True)

    return post


def http_transport(base_url: str, timeout: float = 10) -> Transport:
    """Transport over real HTTP (the demo)."""
    import requests

    session = requests.Session()
    session.trust_env = False

    def post(path: str, body: bytes) -> tuple[int, str]:
        response = session.post(base_url.rstrip("/") + path, data=body, timeout=timeout,
                                headers={"Content-Type": "text/xml"})
        return response.status_code, response.text

    return post

"""The WeChat edge takes any input without falling over (issue 3, incoming half).

Official crypto vectors byte for byte, compatible mode, key rotation, every odd input of
WECHAT.md §5.1–§5.2, de-duplication across processes, one state change at a time per
mediation under concurrent requests from several processes, and restarts mid-conversation.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import xmltodict
import yaml

from bot.app import build_services, create_app
from bot.crypto import EdgeCrypto, KeyCrypto
from bot.simulator import WeChatSimulator, cdata, flask_transport, http_transport, sign
from tests.conftest import CONSUMER, MERCHANT, REPO, STAFF, test_config
from tests.test_webhook import (VC_APPID, VC_ENCRYPT, VC_KEY, VC_MSG_SIGNATURE, VC_NONCE, VC_SIGNATURE,
                                VC_TIMESTAMP, VC_TOKEN)

FOOD_STAFF = STAFF["food_business"]

# --- official vectors (shared/docs/WECHAT.md §2) -----------------------------------------------

VD = dict(timestamp="1410349438", nonce="298025754", msg_signature="003fee52ecc56afb46c00b5c7721be87860ce785",
          encrypt=("mfBCs65c67CeJw22u4VT2TD73q5H06+ocrAIxswCaeZ/d/Lw0msSZFHY0teqgSYiI1zR2gD2DKrB3TIrmX/liNSDrGq"
                   "S8jSI/WPeKB5VPr7Ezr7gomZAyGCwJSgT1TRFWPfONGJMxuj2nk4faTuspAuVIFQ6SHwZuJBZC7mcJp7Cgr9cUhATQWDbOP"
                   "aE7ukZBTV2YqyzH+UI2AK+J1S47cE79k1RX8t0hcTz/O0hlK8DGXKnvYv88qKQcI7z4iaajqHfRVZKBNyOODabs+It+ZfM3d"
                   "WTeFcPgDbGtIEnpt/EDtuuA/zMvtkaKdHdswPnVZQ+xdwbYr3ldGvfT8HlEYEgkgKaThxTFobVlwzu2ZkXCjicbP3xdr15Iq"
                   "48ObgzPpqYuZ3IEoyggZDKClquk0u0orMck4GTF/XyE8yGzc4="),
          plaintext=("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2g"
                     "fYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1410349438</CreateTime>\n<MsgType><![CDATA[text]]>"
                     "</MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6057404712141979648</MsgId>\n</xml>"))

VA_TOKEN, VA_APPID, VA_RANDOM = "pamtest", "wxb11529c136998cb6", "aaaabbbbccccdddd"
VA1_PLAIN = "我是中文abcd123"
VA1_CIPHER = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
VA2_PLAIN = ("<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA["
             "gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType>"
             "<Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId>"
             "<Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]>"
             "</Description></Video></xml>")
VA2_CIPHER = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wL"
    "Ma0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGI"
    "DIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1f"
    "BIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/sl"
    "Two4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yr"
    "f57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb")

VE = dict(token="AAAAA", key="A" * 43, appid="wx134c8103faa5a59e", timestamp="1715943329", nonce="1590219412",
          signature="cc0c594499c1634947d5b502f158ee518947db27", openid="o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
          msg_signature="6c12a4205838198b8fa631b3220723bb07f1015c",
          encrypt=("D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oA"
                   "bqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0"
                   "xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5Wp"
                   "CDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIo"
                   "IpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg=="),
          plaintext=("<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n<FromUserName><![CDATA[o9AgO5Kd5ggOC-bX"
                     "rbNODIiE3bGY]]></FromUserName>\n<CreateTime>1715943329</CreateTime>\n<MsgType><![CDATA[event]]>"
                     "</MsgType>\n<Event><![CDATA[debug_demo]]></Event>\n<debug_str><![CDATA[hello world]]></debug_str>\n"
                     "</xml>"),
          reply_plain="<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>", reply_random="999951349e8ee746",
          reply_timestamp="1713424427", reply_nonce="415670741",
          reply_encrypt=("hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvP"
                         "T9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7"),
          reply_signature="03e0812039325c2712ef5f0f980fd14c70d6e307")


def app_for(redis_handle, router, **wechat):
    config = test_config(wechat=wechat)
    services = build_services(config, redis_handle=redis_handle, router=router)
    return create_app(services=services), services


def post_encrypted(app, token, encrypt, timestamp, nonce, msg_signature, signature=None, extra=""):
    query = urlencode({"signature": signature or sign(token, timestamp, nonce), "timestamp": timestamp,
                       "nonce": nonce, "encrypt_type": "aes", "msg_signature": msg_signature})
    body = f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName>{extra}<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return app.test_client().post(f"/wechat?{query}", data=body.encode())


def msg_signature(token, timestamp, nonce, encrypt):
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def test_vector_c_decrypts_through_the_edge_crypto():
    plain, _ = EdgeCrypto(VC_TOKEN, VC_APPID, VC_KEY).decrypt({"Encrypt": VC_ENCRYPT}, VC_MSG_SIGNATURE,
                                                             VC_TIMESTAMP, VC_NONCE)
    assert "<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>" in plain


def test_vector_d_decrypts_byte_for_byte(redis_handle, redis_data, router):
    plain, _ = EdgeCrypto(VC_TOKEN, VC_APPID, VC_KEY).decrypt(
        f"<xml><ToUserName><![CDATA[toUser]]></ToUserName><Encrypt><![CDATA[{VD['encrypt']}]]></Encrypt></xml>",
        VD["msg_signature"], VD["timestamp"], VD["nonce"])
    assert plain == VD["plaintext"]
    app, services = app_for(redis_handle, router, token=VC_TOKEN, appid=VC_APPID, encoding_aes_key=VC_KEY)
    response = post_encrypted(app, VC_TOKEN, VD["encrypt"], VD["timestamp"], VD["nonce"], VD["msg_signature"])
    assert response.status_code == 200
    assert services.store.load_user("oyORnuP8q7ou2gfYjqLzSIWZf0rs").get("intake")  # it was handled


def test_vector_a_encrypts_byte_for_byte():
    key = KeyCrypto(VA_TOKEN, VC_KEY, VA_APPID)
    assert key.encrypt_text(VA1_PLAIN, VA_RANDOM) == VA1_CIPHER
    assert key.encrypt_text(VA2_PLAIN, VA_RANDOM) == VA2_CIPHER
    envelope = xmltodict.parse(key.encrypt(VA1_PLAIN, "xxxxxx", "1409304348", VA_RANDOM))["xml"]
    assert envelope["Encrypt"] == VA1_CIPHER
    assert envelope["MsgSignature"] == "82c962d39941aa48552f90ef55aa323dc620cc10"
    # and A2 decrypts back
    plain, _ = EdgeCrypto(VA_TOKEN, VA_APPID, VC_KEY).decrypt(
        {"Encrypt": VA2_CIPHER}, msg_signature(VA_TOKEN, "1409304348", "xxxxxx", VA2_CIPHER), "1409304348", "xxxxxx")
    assert plain == VA2_PLAIN


def test_vector_e_push_and_reply_byte_for_byte(redis_handle, redis_data, router):
    assert sign(VE["token"], VE["timestamp"], VE["nonce"]) == VE["signature"]
    plain, key = EdgeCrypto(VE["token"], VE["appid"], VE["key"]).decrypt(
        {"Encrypt": VE["encrypt"]}, VE["msg_signature"], VE["timestamp"], VE["nonce"])
    assert plain == VE["plaintext"]
    envelope = xmltodict.parse(key.encrypt(VE["reply_plain"], VE["reply_nonce"], VE["reply_timestamp"],
                                           VE["reply_random"]))["xml"]
    assert envelope["Encrypt"] == VE["reply_encrypt"] and envelope["MsgSignature"] == VE["reply_signature"]
    # the boundary key (32 zero bytes) through the webhook: an unknown event gets "success"
    app, _ = app_for(redis_handle, router, token=VE["token"], appid=VE["appid"], encoding_aes_key=VE["key"])
    response = post_encrypted(app, VE["token"], VE["encrypt"], VE["timestamp"], VE["nonce"], VE["msg_signature"],
                              signature=VE["signature"])
    assert response.status_code == 200 and response.get_data(as_text=True) == "success"


def test_compatible_mode_body_with_plaintext_and_encrypt(redis_handle, redis_data, router):
    app, services = app_for(redis_handle, router, token=VC_TOKEN, appid=VC_APPID, encoding_aes_key=VC_KEY)
    plain_fields = ("<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668"
                    "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content>"
                    "<MsgId>6054768590064713728</MsgId>")
    response = post_encrypted(app, VC_TOKEN, VC_ENCRYPT, VC_TIMESTAMP, VC_NONCE, VC_MSG_SIGNATURE,
                              signature=VC_SIGNATURE, extra=plain_fields)
    assert response.status_code == 200 and "<Encrypt>" in response.get_data(as_text=True)
    # compatible mode without encrypt_type: the plaintext fields are used as a plain push
    query = urlencode({"signature": VC_SIGNATURE, "timestamp": VC_TIMESTAMP, "nonce": VC_NONCE})
    body = f"<xml><ToUserName><![CDATA[gh]]></ToUserName>{plain_fields.replace('6054768590064713728', '1')}" \
           f"<Encrypt><![CDATA[{VC_ENCRYPT}]]></Encrypt></xml>"
    plain = app.test_client().post(f"/wechat?{query}", data=body.encode())
    assert plain.status_code == 200 and "<Content>" in plain.get_data(as_text=True)


def test_previous_key_is_tried_and_the_reply_uses_it(redis_handle, redis_data, router):
    new_key = "B" * 43
    app, _ = app_for(redis_handle, router, token=VC_TOKEN, appid=VC_APPID, encoding_aes_key=new_key,
                     previous_encoding_aes_key=VC_KEY)
    response = post_encrypted(app, VC_TOKEN, VC_ENCRYPT, VC_TIMESTAMP, VC_NONCE, VC_MSG_SIGNATURE,
                              signature=VC_SIGNATURE)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    envelope = xmltodict.parse(text)["xml"]
    reply = KeyCrypto(VC_TOKEN, VC_KEY, VC_APPID).decrypt(text, envelope["MsgSignature"], envelope["TimeStamp"],
                                                          envelope["Nonce"])
    assert "oyORnuP8q7ou2gfYjqLzSIWZf0rs" in reply
    with pytest.raises(Exception):
        KeyCrypto(VC_TOKEN, new_key, VC_APPID).decrypt(text, envelope["MsgSignature"], envelope["TimeStamp"],
                                                       envelope["Nonce"])
    # without the previous key the same push cannot be opened: 400, not 500
    app2, _ = app_for(redis_handle, router, token=VC_TOKEN, appid=VC_APPID, encoding_aes_key=new_key)
    assert post_encrypted(app2, VC_TOKEN, VC_ENCRYPT, VC_TIMESTAMP, VC_NONCE, VC_MSG_SIGNATURE,
                          signature=VC_SIGNATURE).status_code == 400


# --- WECHAT.md §5.2: crypto edge cases reach the AES step with a correct msg_signature ------------

@pytest.mark.parametrize("encrypt,why", [
    ("!!!not-base64!!!", "binascii"),
    ("YWJj", "not a block multiple"),
    (base64.b64encode(b"\0" * 16).decode(), "struct"),
    (base64.b64encode(b"\0" * 32).decode(), "struct"),
    ("", "empty"),
    (VC_ENCRYPT[:-1], "padding"),
    (VC_ENCRYPT.replace("+", " "), "space for plus"),
])
def test_crypto_edge_cases_are_400_not_500(redis_handle, redis_data, router, caplog, encrypt, why):
    app, _ = app_for(redis_handle, router, token=VC_TOKEN, appid=VC_APPID, encoding_aes_key=VC_KEY)
    with caplog.at_level(logging.WARNING):
        response = post_encrypted(app, VC_TOKEN, encrypt, "1700000000", "1",
                                  msg_signature(VC_TOKEN, "1700000000", "1", encrypt))
    assert response.status_code == 400, why
    assert "cannot decrypt" in caplog.text


def test_wrong_appid_and_wrong_key_are_400(redis_handle, redis_data, router):
    for wechat in ({"appid": "wxWRONG"}, {"encoding_aes_key": "A" * 43}):
        settings = dict(token=VC_TOKEN, appid=VC_APPID, encoding_aes_key=VC_KEY)
        settings.update(wechat)
        app, _ = app_for(redis_handle, router, **settings)
        assert post_encrypted(app, VC_TOKEN, VC_ENCRYPT, VC_TIMESTAMP, VC_NONCE, VC_MSG_SIGNATURE,
                              signature=VC_SIGNATURE).status_code == 400


def test_missing_encrypt_element_and_bad_msg_signature(redis_handle, redis_data, router):
    app, _ = app_for(redis_handle, router, token=VC_TOKEN, appid=VC_APPID, encoding_aes_key=VC_KEY)
    query = urlencode({"signature": VC_SIGNATURE, "timestamp": VC_TIMESTAMP, "nonce": VC_NONCE,
                       "encrypt_type": "aes", "msg_signature": VC_MSG_SIGNATURE})
    assert app.test_client().post(f"/wechat?{query}", data=b"<xml><ToUserName>x</ToUserName></xml>").status_code == 400
    upper = post_encrypted(app, VC_TOKEN, VC_ENCRYPT, VC_TIMESTAMP, VC_NONCE, VC_MSG_SIGNATURE.upper(),
                           signature=VC_SIGNATURE)
    assert upper.status_code == 403


def test_encrypted_push_without_a_configured_key_is_400(app):
    query = urlencode({"signature": sign("testtoken", "1", "2"), "timestamp": "1", "nonce": "2",
                       "encrypt_type": "aes", "msg_signature": "x"})
    assert app.test_client().post(f"/wechat?{query}", data=b"<xml><Encrypt>x</Encrypt></xml>").status_code == 400


# --- WECHAT.md §5.1: odd but well-signed plain pushes ----------------------------------------------

def plain_post(app, body: bytes):
    return app.test_client().post(f"/wechat?{urlencode({'signature': sign('testtoken', '1', '2'), 'timestamp': '1', 'nonce': '2'})}",
                                  data=body)


def xml(inner: str) -> bytes:
    return (f"<xml><ToUserName>{cdata('gh')}</ToUserName><FromUserName>{cdata(CONSUMER)}</FromUserName>"
            + inner + "</xml>").encode()


@pytest.mark.parametrize("body,handled", [
    (xml("<CreateTime>abc</CreateTime><MsgType>text</MsgType><Content>超市卖过期牛奶</Content><MsgId>abc</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>a</Content><Content>b</Content><MsgId>5</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>text</MsgType><Content></Content><MsgId>6</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>  <![CDATA[text]]></MsgType><Content>你好</Content><MsgId>7</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>TEXT</MsgType><Content>你好</Content><MsgId>8</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&amp; &lt;c&gt; &#x1F600;</Content><MsgId>9</MsgId>"), True),
    (b"\xef\xbb\xbf" + xml("<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>BOM</Content><MsgId>10</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>\x01ctl</Content><MsgId>11</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>sticker</MsgType><MsgId>12</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>event</MsgType>"), False),
    (xml("<CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event>"), False),
    (xml("<CreateTime>1</CreateTime><MsgType>event</MsgType><Event>unsubscribe</Event>"), False),
    (xml("<CreateTime>1</CreateTime><MsgType>video</MsgType><MediaId>v</MediaId><MsgId>13</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>location</MsgType><Location_X>23.1</Location_X><Location_Y>113.3</Location_Y>"
         "<Scale>20</Scale><Label>临淄区</Label><MsgId>14</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>link</MsgType><Title>t</Title><Url>http://x</Url><MsgId>15</MsgId>"), True),
    (xml("<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>" + "长" * 20000 + "</Content><MsgId>16</MsgId>"), True),
])
def test_odd_pushes_get_a_deliberate_answer(app, body, handled):
    response = plain_post(app, body)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    if handled:
        assert "<Content>" in text  # the person got a Chinese answer
        xmltodict.parse(text)  # and it is valid XML
    else:
        assert text == "success"


@pytest.mark.parametrize("body,reason", [
    (xml("<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&foo;</Content><MsgId>1</MsgId>"), "unparseable"),
    (xml("<MsgType>text</MsgType><MsgType>image</MsgType>"), "unparseable"),
    (b"<xml><Content>truncated", "unparseable"),
    (b'<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml></xml>', "DOCTYPE"),
    (b"<!doctype xml><xml></xml>", "DOCTYPE"),
])
def test_protocol_abuse_is_400_with_a_log_line(app, caplog, body, reason):
    with caplog.at_level(logging.WARNING):
        response = plain_post(app, body)
    assert response.status_code == 400
    assert reason in caplog.text


def test_body_cap_is_checked_before_reading(app):
    big = b"<xml>" + b"x" * (70 * 1024) + b"</xml>"
    assert plain_post(app, big).status_code == 413


def test_duplicate_keys_expire(wechat, services):
    wechat.text(CONSUMER, "你好", msg_id=424242)
    ttl = services.redis.data.ttl(services.keys.dedupe("m:424242"))
    assert 0 < ttl <= 300


# --- restart and expiry ------------------------------------------------------------------------

def test_a_new_process_continues_the_conversation(redis_handle, redis_data, router):
    """Nothing lives in process memory: a second app on the same Redis picks up mid-intake."""
    first, _ = app_for(redis_handle, router)
    wechat1 = WeChatSimulator(flask_transport(first.test_client()), token="testtoken")
    assert "手机" in wechat1.text(CONSUMER, "华联超市的面包发霉了，要求退款").content
    second, services = app_for(redis_handle, router)  # "restarted"
    wechat2 = WeChatSimulator(flask_transport(second.test_client()), token="testtoken")
    assert "图片" in wechat2.text(CONSUMER, "13800001234").content
    assert '"phone": "13800001234"' in services.store.load_user(CONSUMER)["intake"]


def test_abandoned_intake_expires_and_the_consumer_is_told(redis_handle, redis_data, router):
    now = [1_800_000_000.0]
    config = test_config(intake={"expire_hours": 24})
    services = build_services(config, redis_handle=redis_handle, router=router, clock=lambda: now[0])
    wechat = WeChatSimulator(flask_transport(create_app(services=services).test_client()), token="testtoken")
    wechat.text(CONSUMER, "华联超市的面包发霉了，要求退款")
    now[0] += 23 * 3600
    assert "图片" in wechat.text(CONSUMER, "13800001234").content  # still alive after 23 h
    now[0] += 25 * 3600
    reply = wechat.text(CONSUMER, "在吗")
    assert "已经作废" in reply.content
    assert "intake" not in services.store.load_user(CONSUMER)
    now[0] += 60
    reply = wechat.text(CONSUMER, "健身房办卡后闭店了，要求退卡退款")
    assert "收到" in reply.content  # a fresh complaint starts normally


# --- several processes at once ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(folder, redis_url: str, workers: int):
    """`python -m bot serve` (gunicorn) on a free port against the test Redis; yields its URL."""
    import requests

    config = test_config()
    config.pop("_path", None)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(path), "--port", str(port),
                             "--workers", str(workers)], cwd=REPO, env=dict(os.environ, REDIS_URL=redis_url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                requests.get(url + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.time() < deadline, "the server did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, redis_handle):
    """Three gunicorn worker processes on the test Redis."""
    with served(tmp_path_factory.mktemp("serve"), redis_handle.url, workers=3) as url:
        yield url, None


def test_concurrent_photos_from_several_processes_all_land(live_server, redis_data):
    url, _ = live_server
    wechat = WeChatSimulator(http_transport(url), token="testtoken")
    wechat.text(CONSUMER, "华联超市卖过期牛奶，要求退款，电话13800001234")
    senders = [WeChatSimulator(http_transport(url), token="testtoken") for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda i: senders[i % 6].image(CONSUMER, f"MEDIA_{i}"), range(30)))
    assert all(r.status == 200 for r in replies)
    intake = redis_data.hget(f"med:user:{CONSUMER}", "intake")
    for i in range(30):
        assert f"MEDIA_{i}" in intake, "a concurrent update was lost"


def test_three_quick_answers_land_in_three_fields_in_order(live_server, redis_data):
    url, _ = live_server
    wechat = WeChatSimulator(http_transport(url), token="testtoken")
    wechat.text(CONSUMER, "买的牛奶过期了，喝了肚子疼")  # merchant, demand, phone missing
    answers = ["华联超市稷下店", "退款", "13800001234"]
    threads = []
    for answer in answers:  # sent like a fast typist: each starts before the previous reply is back
        thread = threading.Thread(target=wechat.text, args=(CONSUMER, answer))
        thread.start()
        threads.append(thread)
        time.sleep(0.03)
    for thread in threads:
        thread.join()
    import json

    draft = json.loads(redis_data.hget(f"med:user:{CONSUMER}", "intake"))
    assert (draft["merchant"], draft["demand"], draft["phone"]) == tuple(answers)


def test_three_parties_changing_one_mediation_at_once(live_server, redis_data):
    """Consumer, merchant and mediator, each through a different worker process, on one ticket."""
    url, _ = live_server
    wechat = WeChatSimulator(http_transport(url), token="testtoken")
    wechat.text(CONSUMER, "华联超市卖过期牛奶，要求退款，电话13800001234")
    wechat.text(CONSUMER, "完成")
    no = re.search(r"(LZ-\d{8}-\d{4})", wechat.text(CONSUMER, "确认").content).group(1)
    wechat.text(FOOD_STAFF, f"/take {no}")
    code = re.search(r"邀请码：(\d{6})", wechat.text(FOOD_STAFF, f"/invite {no}").content).group(1)
    wechat.text(MERCHANT, code)

    def burst(i: int):
        who = (CONSUMER, MERCHANT, FOOD_STAFF)[i % 3]
        if who == CONSUMER and i % 2:
            return wechat.image(CONSUMER, f"EVIDENCE_{i}")
        return wechat.text(who, f"第{i}条消息")

    with ThreadPoolExecutor(max_workers=9) as pool:
        replies = list(pool.map(burst, range(30)))
    assert all(r.status == 200 for r in replies)
    ticket = redis_data.hgetall(f"med:ticket:{no}")
    photos = [i for i in range(30) if i % 3 == 0 and i % 2]
    for i in photos:
        assert f"EVIDENCE_{i}" in ticket["photos"]
    assert ticket["state"] == "mediating"
    transcript = redis_data.lrange(f"med:ticket:{no}:transcript", 0, -1)
    assert sum("第" in line for line in transcript) == 30 - len(photos)


def test_restarting_the_server_loses_nothing(redis_data, tmp_path, redis_handle):
    with served(tmp_path, redis_handle.url, workers=1) as url:
        WeChatSimulator(http_transport(url), token="testtoken").text(CONSUMER, "华联超市卖过期牛奶，要求退款")
    # the server process is gone; a new one continues where the conversation stopped
    with served(tmp_path, redis_handle.url, workers=1) as url:
        again = WeChatSimulator(http_transport(url), token="testtoken")
        assert "图片" in again.text(CONSUMER, "13800001234").content

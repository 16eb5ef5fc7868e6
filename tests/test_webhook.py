"""The WeChat edge: verification, safe mode, duplicates, bad signatures, bad bodies."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto

from bot.app import build_services, create_app
from bot.simulator import WeChatSimulator, flask_transport, sign, text_xml
from tests.conftest import CONSUMER, test_config

# Vector C of shared/docs/WECHAT.md §2 (Tencent's official Python demo).
VC_TOKEN = "spamtest"
VC_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
VC_APPID = "wx2c2769f8efd9abc2"
VC_TIMESTAMP = "1409735669"
VC_NONCE = "1320562132"
VC_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
VC_SIGNATURE = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
VC_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9"
    "FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+"
    "WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0E"
    "IBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
VC_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]>"
    "</FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]>"
    "</Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>"
)


@pytest.fixture
def safe_app(redis_handle, redis_data, router):
    config = test_config(wechat={"token": VC_TOKEN, "appid": VC_APPID, "encoding_aes_key": VC_KEY})
    return create_app(services=build_services(config, redis_handle=redis_handle, router=router))


def signed_query(token: str, **extra) -> str:
    timestamp, nonce = "1700000000", "42"
    return urlencode({"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra})


def test_get_verification_returns_echostr(app):
    client = app.test_client()
    ok = client.get(f"/wechat?{signed_query('testtoken', echostr='hello123')}")
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "hello123"
    bad = client.get("/wechat?signature=00&timestamp=1&nonce=2&echostr=x")
    assert bad.status_code == 403


def test_safe_mode_decrypts_vector_c_exactly_and_encrypts_the_reply(safe_app):
    crypto = WeChatCrypto(VC_TOKEN, VC_KEY, VC_APPID)
    # the envelope decrypts to the published plaintext, byte for byte
    assert crypto.decrypt_message({"Encrypt": VC_ENCRYPT}, VC_MSG_SIGNATURE, VC_TIMESTAMP, VC_NONCE) == VC_PLAINTEXT
    body = (f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
            f"<Encrypt><![CDATA[{VC_ENCRYPT}]]></Encrypt></xml>")
    query = urlencode({"signature": VC_SIGNATURE, "timestamp": VC_TIMESTAMP, "nonce": VC_NONCE,
                       "encrypt_type": "aes", "msg_signature": VC_MSG_SIGNATURE})
    response = safe_app.test_client().post(f"/wechat?{query}", data=body)
    assert response.status_code == 200
    envelope = xmltodict.parse(response.get_data(as_text=True))["xml"]
    assert envelope["Nonce"] == VC_NONCE
    reply = xmltodict.parse(crypto.decrypt_message(response.get_data(as_text=True), envelope["MsgSignature"],
                                                   envelope["TimeStamp"], envelope["Nonce"]))["xml"]
    assert reply["ToUserName"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert reply["FromUserName"] == "gh_10f6c3c3ac5a"
    assert "登记" in reply["Content"]  # the consumer's text started an intake


def test_safe_mode_full_conversation(safe_app, services):
    wechat = WeChatSimulator(flask_transport(safe_app.test_client()), token=VC_TOKEN, appid=VC_APPID,
                             encoding_aes_key=VC_KEY)
    assert "手机" in wechat.text(CONSUMER, "华联超市卖过期面包，要求退款").content
    assert "图片" in wechat.text(CONSUMER, "13800001234").content


def test_safe_mode_rejects_tampered_ciphertext(safe_app, caplog):
    body = "<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[!!!not-base64!!!]]></Encrypt></xml>"
    query = urlencode({"signature": VC_SIGNATURE, "timestamp": VC_TIMESTAMP, "nonce": VC_NONCE,
                       "encrypt_type": "aes", "msg_signature": VC_MSG_SIGNATURE})
    with caplog.at_level(logging.WARNING):
        response = safe_app.test_client().post(f"/wechat?{query}", data=body)
    assert response.status_code == 403  # msg_signature no longer covers this Encrypt
    assert "rejected" in caplog.text


def test_duplicate_msgid_is_handled_once(wechat, services):
    xml = text_xml(CONSUMER, "超市卖的酸奶过期了要求退款", msg_id=777001)
    first = wechat.post_xml(xml, CONSUMER)
    second = wechat.post_xml(xml, CONSUMER)
    assert first.content and second.content == first.content
    # handled once: the draft did not advance a second time on the retry
    user = services.store.load_user(CONSUMER)
    assert '"state": "merchant"' in user["intake"]


def test_events_in_the_same_second_are_not_confused(wechat):
    a = wechat.event(CONSUMER, "LOCATION", None, create_time=1700000000)
    b = wechat.event(CONSUMER, "CLICK", "QUERY", create_time=1700000000)
    assert a.ok and b.ok
    assert "没有投诉记录" in b.content  # the CLICK was not swallowed as a duplicate of LOCATION


def test_wrong_signature_is_403(app, caplog):
    with caplog.at_level(logging.WARNING):
        response = app.test_client().post("/wechat?signature=bad&timestamp=1&nonce=2",
                                          data=text_xml(CONSUMER, "你好"))
    assert response.status_code == 403
    assert "bad signature" in caplog.text


@pytest.mark.parametrize("body", [
    b"", b"   ", b"hello", b'{"json": true}', b"<xml><Content>unclosed", b"<notxml></notxml>",
    b"<xml><ToUserName>a</ToUserName></xml>", "<xml>\u4e2d</xml>".encode("gbk"),
    b'<!DOCTYPE xml [<!ENTITY e "x">]><xml><MsgType>text</MsgType><Content>&e;</Content></xml>',
    b"<xml><MsgType>text</MsgType><MsgType>image</MsgType></xml>",
])
def test_malformed_bodies_never_500(app, body):
    response = app.test_client().post(f"/wechat?{signed_query('testtoken')}", data=body)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.get_data(as_text=True) in ("success", "")


def test_oversized_body_is_413(app):
    response = app.test_client().post(f"/wechat?{signed_query('testtoken')}", data=b"<xml>" + b"a" * 70000)
    assert response.status_code == 413


def test_reply_echoing_cdata_terminator_stays_valid_xml(wechat):
    wechat.text(CONSUMER, "华联超市说 ]]><x> 不退款 😡 还骂人，要求赔偿，电话13800001234")
    summary = wechat.text(CONSUMER, "完成")  # the summary echoes the consumer's own words
    assert summary.ok
    assert "]]><x> 不退款 😡" in summary.content  # parsed back intact by a real XML parser


def test_control_character_is_removed_not_fatal(wechat):
    reply = wechat.text(CONSUMER, "超市\x1d卖过期牛奶")
    assert reply.ok and "登记" in reply.content

"""The whole main path over the webhook: intake → ticket → take → invite → join → relay →
proposal → settlement → rating, with outbound messages delivered through the stand-in."""

from __future__ import annotations

import re

from tests.conftest import CONSUMER, MERCHANT, STAFF

FOOD_STAFF = STAFF["food_business"]


def file_complaint(wechat, openid=CONSUMER) -> str:
    """Consumer files a food complaint; returns the ticket number."""
    first = wechat.text(openid, "我在稷下街道华联超市买的牛奶过期了，喝了肚子疼，要求退款")
    assert "手机" in first.content  # merchant and demand were in the text: only the phone is missing
    again = wechat.text(openid, "1380000")
    assert "格式不对" in again.content  # invalid phone is re-asked
    photos = wechat.text(openid, "13800001234")
    assert "图片" in photos.content
    assert "已收到第1张" in wechat.image(openid, "MEDIA_RECEIPT").content
    summary = wechat.text(openid, "完成")
    assert "华联超市" in summary.content and "13800001234" in summary.content and "1张图片" in summary.content
    done = wechat.text(openid, "确认")
    match = re.search(r"工单号：(LZ-\d{8}-\d{4})", done.content)
    assert match, done.content
    assert "24小时" in done.content
    return match.group(1)


def test_complaint_is_routed_and_ticket_created(wechat, services, deliver):
    no = file_complaint(wechat)
    ticket = services.store.load_ticket(no)
    assert ticket.state == "submitted"
    assert ticket.unit == "food_business"
    assert "过期" in ticket.keywords
    assert ticket.phone == "13800001234" and ticket.photos == ["MEDIA_RECEIPT"]
    assert abs(ticket.response_due - ticket.created_at - 24 * 3600) < 1
    # staff of the routed unit are notified through the customer-service API
    sent = deliver()
    assert any(to == FOOD_STAFF and no in text and "/take" in text for to, text in sent)
    # the consumer can look it up
    assert no in wechat.text(CONSUMER, "查询").content


def test_three_party_mediation_to_settlement_and_rating(wechat, services, deliver, standin):
    no = file_complaint(wechat)
    assert "已受理" in wechat.text(FOOD_STAFF, f"/take {no}").content
    invite = wechat.text(FOOD_STAFF, f"/invite {no}").content
    code = re.search(r"邀请码：(\d{6})", invite).group(1)
    assert f"join:{code}" in invite

    joined = wechat.text(MERCHANT, code).content
    assert "已加入" in joined and "138****1234" in joined and CONSUMER not in joined
    assert services.store.load_ticket(no).state == "mediating"

    standin.clear()
    assert wechat.text(CONSUMER, "牛奶是上周五买的，小票在这里").content == ""
    assert wechat.text(MERCHANT, "我们核实一下批次").content == ""
    assert wechat.text(FOOD_STAFF, "请双方保持沟通").content == ""
    sent = deliver()
    assert (MERCHANT, "【消费者】牛奶是上周五买的，小票在这里") in sent
    assert (FOOD_STAFF, "【消费者】牛奶是上周五买的，小票在这里") in sent
    assert (CONSUMER, "【商家】我们核实一下批次") in sent
    assert (CONSUMER, "【调解员】请双方保持沟通") in sent and (MERCHANT, "【调解员】请双方保持沟通") in sent

    assert "发给双方" in wechat.text(FOOD_STAFF, f"/propose {no} 商家退款25元并赔偿100元").content
    assert "等待另一方" in wechat.text(CONSUMER, "同意").content
    settled = wechat.text(MERCHANT, "同意").content
    assert "调解成功" in settled
    ticket = services.store.load_ticket(no)
    assert ticket.state == "settled"
    record = services.store.settlement(no)
    assert record["terms"] == "商家退款25元并赔偿100元"
    assert record["parties"]["consumer"]["phone"] == "138****1234"
    assert any(e["text"] == "【消费者】" or e["role"] == "consumer" for e in record["transcript"])
    assert {"consumer", "merchant"} <= set(record["agreed_by"])

    sent = deliver()
    assert any(to == CONSUMER and "打分" in text for to, text in sent)
    assert "感谢" in wechat.text(CONSUMER, "5").content
    ticket = services.store.load_ticket(no)
    assert ticket.state == "closed" and ticket.rating == 5
    # the next message starts a new complaint instead of talking to a closed ticket
    assert "收到" in wechat.text(CONSUMER, "又遇到一个问题：健身房办卡后闭店跑路了").content


def test_termination_then_rating_closes(wechat, services):
    no = file_complaint(wechat)
    wechat.text(FOOD_STAFF, f"/take {no}")
    closed = wechat.text(FOOD_STAFF, f"/close {no} 3").content
    assert "无法达成调解协议" in closed
    assert services.store.load_ticket(no).state == "terminated"
    assert "打分" in wechat.text(CONSUMER, "好吧").content
    assert "办结" in wechat.text(CONSUMER, "3").content  # 1–2 reopens the case (回访, test_clocks)
    assert services.store.load_ticket(no).state == "closed"


def test_out_of_state_messages_get_chinese_answers(wechat, services):
    no = file_complaint(wechat)
    # a proposal before the ticket is even accepted
    assert "商家加入调解后" in wechat.text(FOOD_STAFF, f"/propose {no} 退款").content
    wechat.text(FOOD_STAFF, f"/take {no}")
    assert "已被受理" in wechat.text(FOOD_STAFF, f"/take {no}").content
    # a proposal before the merchant joined
    assert "商家加入调解后" in wechat.text(FOOD_STAFF, f"/propose {no} 退款").content
    assert "用法" in wechat.text(FOOD_STAFF, "/propose").content
    assert "找不到工单" in wechat.text(FOOD_STAFF, "/take LZ-20000101-0001").content
    assert "邀请码无效" in wechat.text(MERCHANT, "123456").content
    assert services.store.load_ticket(no).state == "accepted"


def test_cancel_leaves_intake(wechat, services):
    assert "收到" in wechat.text(CONSUMER, "理发店办的会员卡不给退").content
    assert "已取消" in wechat.text(CONSUMER, "取消").content
    assert services.store.load_user(CONSUMER).get("intake") is None
    assert "没有投诉记录" in wechat.text(CONSUMER, "查询").content


def test_merchant_joins_through_qr_scene(wechat, services):
    no = file_complaint(wechat)
    wechat.text(FOOD_STAFF, f"/take {no}")
    code = re.search(r"邀请码：(\d{6})", wechat.text(FOOD_STAFF, f"/invite {no}").content).group(1)
    # not yet a follower: subscribe with qrscene_ prefix
    reply = wechat.event("oNewMerchant", "subscribe", f"qrscene_join:{code}")
    assert "已加入" in reply.content
    assert services.store.load_ticket(no).merchant == "oNewMerchant"


def test_merchant_joins_through_scan_of_follower(wechat, services):
    no = file_complaint(wechat)
    wechat.text(FOOD_STAFF, f"/take {no}")
    code = re.search(r"邀请码：(\d{6})", wechat.text(FOOD_STAFF, f"/invite {no}").content).group(1)
    assert "已加入" in wechat.event(MERCHANT, "SCAN", f"join:{code}").content
    assert services.store.load_ticket(no).state == "mediating"

"""Issue 6 through the real webhook: what the consumer is told and what is opened.

Each kind (投诉, 举报, both, 咨询), every category, out-of-scope referral, a merchant outside
the district, place routing by text and by WeChat location, low confidence (the intake
queue), duplicates. Messages are written by the team; the real Redis and the `wechat`
simulator fixture, no mocks.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.conftest import CONSUMER, MERCHANT, STAFF
from tests.test_routing import REACH

INTAKE_STAFF = STAFF["consumer_rights"]
FOOD_STAFF = STAFF["food_business"]
TICKET_RE = re.compile(r"工单号：(LZ-\d{8}-\d{4})")


def location_xml(openid: str, label: str, msg_id: int) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_bureau]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[location]]></MsgType>"
            f"<Location_X>36.82</Location_X><Location_Y>118.31</Location_Y><Scale>15</Scale>"
            f"<Label><![CDATA[{label}]]></Label><MsgId>{msg_id}</MsgId></xml>")


def answer_all(wechat, reply: str, openid: str = CONSUMER, place: str = "稷下街道",
               merchant: str = "临淄区某某商店") -> str:
    """Answer whatever the intake asks, the way a cooperative consumer would, until it ends."""
    for _ in range(10):
        if "工单号" in reply or "不再重复登记" in reply or "本局不能受理" in reply or "不属于市场监管" in reply:
            return reply
        if "回复“确认”" in reply:
            reply = wechat.text(openid, "确认").content
        elif "哪个镇" in reply or "经营者在哪里" in reply or "您提到了" in reply:
            reply = wechat.text(openid, place).content
        elif "商家的名称" in reply:
            reply = wechat.text(openid, merchant).content
        elif "怎么解决" in reply:
            reply = wechat.text(openid, "退款").content
        elif "手机号" in reply:
            reply = wechat.text(openid, "13800001234").content
        elif "发送图片" in reply:
            reply = wechat.text(openid, "完成").content
        else:
            raise AssertionError(f"unexpected intake reply: {reply}")
    raise AssertionError("intake did not end")


def ticket_of(services, reply: str):
    match = TICKET_RE.search(reply)
    assert match, reply
    return services.store.load_ticket(match.group(1))


def intake_queue(services) -> list:
    """The intake queue as shared with issue 4: open tickets in state submitted whose unit is
    the intake unit (routing.fallback_unit)."""
    fallback = services.config["routing"]["fallback_unit"]
    tickets = [services.store.load_ticket(no) for no in services.store.open_ticket_numbers()]
    return [t for t in tickets if t and t.state == "submitted" and t.unit == fallback]


# ── every category, routed through the webhook ─────────────────────────────────

STATION_CATEGORIES = {"beauty_salon", "clothing_daily", "services_contract", "accommodation"}


@pytest.mark.parametrize("category,unit,text", REACH, ids=[c for c, _, _ in REACH])
def test_every_category_reaches_its_unit(wechat, services, category, unit, text):
    reply = answer_all(wechat, wechat.text(CONSUMER, text).content)
    if category == "out_of_scope":
        assert "不属于市场监管部门的职责" in reply and "12378" in reply  # 银行信用卡 → 金融监管
        assert services.store.consumer_tickets(CONSUMER) == []
        return
    ticket = ticket_of(services, reply)
    assert ticket.category == category and ticket.kind == "complaint"
    if category in STATION_CATEGORIES:  # an ordinary dispute: the 所 of the merchant's town
        assert (ticket.unit, ticket.routed, ticket.station) == ("station_jixia", "station", "station_jixia")
    else:
        assert (ticket.unit, ticket.routed) == (unit, "category")
    assert ticket.candidates[0][0] == category and ticket.keywords


# ── kinds ─────────────────────────────────────────────────────────────────────

def test_report_is_checked_not_mediated(wechat, services, deliver):
    first = wechat.text(CONSUMER, "举报：稷下街道有一家小饭馆没有营业执照，后厨又脏又乱，请你们派人来查一查。")
    assert "登记您的举报" in first.content and "被举报商家" in first.content
    reply = answer_all(wechat, first.content, merchant="老王家常菜馆")
    assert "举报已登记" in reply and "严格保密" in reply
    ticket = ticket_of(services, reply)
    assert (ticket.kind, ticket.unit, ticket.demand) == ("report", "catering", "")
    sent = deliver()
    notice = next(text for to, text in sent if ticket.no in text and "/take" in text)
    assert "【举报】" in notice and "不邀请商家" in notice
    # staff take it; inviting the merchant is refused: the reporter never meets the merchant
    taken = wechat.text(INTAKE_STAFF, f"/take {ticket.no}").content
    assert "已受理" in taken and "/invite" not in taken
    told = [text for to, text in deliver() if to == CONSUMER and ticket.no in text]
    assert told and all("商家" not in text for text in told)  # the reporter hears of no merchant contact
    refused = wechat.text(INTAKE_STAFF, f"/invite {ticket.no}").content
    assert "举报和咨询工单不进行调解" in refused
    assert services.store.load_ticket(ticket.no).invite_code == ""


def test_anonymous_report(wechat, services):
    assert "您要举报的情况" in wechat.text(CONSUMER, "我要举报").content
    asks = wechat.text(CONSUMER, "齐都镇路边一个小作坊生产辣条，没有营业执照，卫生条件很差").content
    assert "被举报商家的名称" in asks
    assert "匿名" in wechat.text(CONSUMER, "路边辣条作坊，齐都镇").content  # no demand asked
    draft = json.loads(services.store.load_user(CONSUMER)["intake"])
    assert draft["kind"] == "report" and draft["state"] == "phone"
    wechat.text(CONSUMER, "匿名")
    summary = wechat.text(CONSUMER, "完成").content
    assert "【电话】匿名" in summary
    ticket = ticket_of(services, wechat.text(CONSUMER, "确认").content)
    assert ticket.kind == "report" and ticket.phone == "" and ticket.station == "station_qidu"


def test_dispute_and_violation_in_one_message_make_two_tickets(wechat, services, deliver, standin):
    text = "在美团上点的外卖麻辣烫里吃出一只苍蝇，商家只愿意退一半钱，我要求全额退款，也请你们查查他们后厨卫生。"
    first = wechat.text(CONSUMER, text).content
    assert "另作举报登记" in first
    reply = answer_all(wechat, first, merchant="稷下街道张记麻辣烫")
    complaint = ticket_of(services, reply)  # the first number is the complaint's
    report_no = re.findall(r"工单号：(LZ-\d{8}-\d{4})", reply)[1]
    report = services.store.load_ticket(report_no)
    assert (complaint.kind, report.kind) == ("complaint", "report")
    assert complaint.related == [report.no] and report.related == [complaint.no]
    assert "查查" not in complaint.facts and "查查" in report.facts  # separate handling
    assert complaint.unit == report.unit == "catering"
    user = services.store.load_user(CONSUMER)
    assert user["ticket"] == complaint.no and json.loads(user["also"]) == [report.no]

    # the complaint is mediated; the merchant sees the dispute, never the request to check
    wechat.text(INTAKE_STAFF, f"/take {complaint.no}")
    code = re.search(r"邀请码：(\d{6})", wechat.text(INTAKE_STAFF, f"/invite {complaint.no}").content).group(1)
    joined = wechat.text(MERCHANT, code).content
    assert "苍蝇" in joined and "查查" not in joined and "后厨卫生" not in joined
    # with two tickets open, the consumer's words go to the one in mediation
    standin.clear()
    assert wechat.text(CONSUMER, "我还留着那只苍蝇的照片").content == ""
    assert (MERCHANT, "【消费者】我还留着那只苍蝇的照片") in deliver()


def test_question_answered_from_the_faq_at_once(wechat, services, deliver):
    reply = wechat.text(CONSUMER, "请问网上买的衣服七天无理由退货，来回运费应该谁出？").content
    assert reply.startswith("【常见问题】") and "第二十五条" in reply
    assert "intake" not in services.store.load_user(CONSUMER)
    assert services.store.consumer_tickets(CONSUMER) == [] and deliver() == []


def test_question_without_an_answer_goes_to_intake_staff(wechat, services, deliver):
    first = wechat.text(CONSUMER, "请问你们能帮忙看看一家装修公司有没有资质吗？我还没签合同。").content
    assert "收到您的咨询" in first and "手机号码" in first
    reply = answer_all(wechat, first)
    assert "咨询已登记" in reply
    ticket = ticket_of(services, reply)
    assert (ticket.kind, ticket.unit, ticket.routed, ticket.phone) == ("consult", "consumer_rights", "intake",
                                                                       "13800001234")
    assert ticket.no in [t.no for t in intake_queue(services)]
    assert any(to == INTAKE_STAFF and "【咨询】" in text for to, text in deliver())


# ── told at once: out of scope, outside the district ──────────────────────────

@pytest.mark.parametrize("text,agency", [
    ("小区物业公司不管事，楼道灯坏了半年没人修，还催着交物业费。", "住房和城乡建设"),
    ("家里的宽带老是断网，打了好几次运营商客服电话都没人来修，话费还照扣不误。", "通信管理"),
    ("快递公司把我的包裹弄丢了，快递员电话也不接。", "邮政管理"),
])
def test_out_of_scope_is_referred_kindly_and_nothing_is_dispatched(wechat, services, deliver, text, agency):
    reply = wechat.text(CONSUMER, text).content
    assert "不属于市场监管部门的职责范围" in reply and agency in reply
    assert re.search(r"\d{5}", reply)  # how to reach them: a hotline
    assert "intake" not in services.store.load_user(CONSUMER)
    assert services.store.open_ticket_numbers() == [] and deliver() == []


def test_merchant_outside_the_district_is_referred_not_mediated(wechat, services, deliver):
    first = wechat.text(CONSUMER, "在张店区万象汇买的羽绒服穿了一周就往外钻毛，商家不给退，要求退货退款。").content
    assert "登记您的投诉" in first  # only a hint: the consumer may live there
    reply = wechat.text(CONSUMER, "优衣库").content
    assert "您提到了张店区" in reply
    reply = wechat.text(CONSUMER, "是的").content
    assert "不在临淄区" in reply and "张店区市场监督管理局" in reply and "12315" in reply
    assert "intake" not in services.store.load_user(CONSUMER)
    assert services.store.open_ticket_numbers() == [] and deliver() == []


def test_online_seller_elsewhere_is_referred(wechat, services):
    wechat.text(CONSUMER, "在淘宝上买的电饭煲收到就是坏的，卖家不给退货，要求退款")
    assert "经营者在哪里" in wechat.text(CONSUMER, "美的电饭煲专卖网店").content
    reply = wechat.text(CONSUMER, "浙江省杭州市").content
    assert "本局不能受理" in reply and services.store.open_ticket_numbers() == []


# ── place → 市场监管所 ─────────────────────────────────────────────────────────

def test_place_in_the_first_message_routes_to_the_station(wechat, services, deliver):
    text = "在雪宫街道一家理发店烫头发，烫完头发全焦了，店家只肯退一半钱，要求全额退款并赔偿。"
    reply = answer_all(wechat, wechat.text(CONSUMER, text).content)
    ticket = ticket_of(services, reply)
    assert (ticket.category, ticket.unit, ticket.routed) == ("beauty_salon", "station_xuegong", "station")
    assert "雪宫市场监管所" in reply
    # the station has no staff configured: intake staff are told, with the reasoning
    notice = next(text for to, text in deliver() if to == INTAKE_STAFF and ticket.no in text)
    assert "商家所在地 雪宫街道 → 雪宫市场监管所" in notice and "命中" in notice


def test_wechat_location_answers_where_the_merchant_is(wechat, services):
    first = wechat.text(CONSUMER, "美容院做皮肤管理把脸做过敏了，店里不承认，要求赔偿医药费").content
    assert "商家" in first
    assert "哪个镇" in wechat.text(CONSUMER, "丽人美容院").content
    label = "山东省淄博市临淄区闻韶街道桓公路88号"
    reply = wechat.post_xml(location_xml(CONSUMER, label, 880001), CONSUMER).content
    assert "已收到位置" in reply and label in reply
    ticket = ticket_of(services, answer_all(wechat, reply))
    assert (ticket.unit, ticket.station, ticket.place) == ("station_wenshao", "station_wenshao", label)


def test_location_before_any_words_starts_an_intake(wechat, services):
    reply = wechat.post_xml(location_xml(CONSUMER, "山东省淄博市临淄区朱台镇", 880002), CONSUMER).content
    assert "已收到位置" in reply and "描述" in reply
    reply = wechat.text(CONSUMER, "在这家干洗店洗的羊绒大衣缩水了，店家不肯赔偿").content
    ticket = ticket_of(services, answer_all(wechat, reply, merchant="朱台干洗店"))
    assert (ticket.category, ticket.unit) == ("services_contract", "station_zhutai")


# ── low confidence: the intake queue ──────────────────────────────────────────

def test_low_confidence_goes_to_the_intake_queue_with_its_candidates(wechat, services, deliver):
    reply = answer_all(wechat, wechat.text(CONSUMER, "买的东西有问题，商家态度很差，一直不给退款").content)
    ticket = ticket_of(services, reply)
    assert (ticket.unit, ticket.routed, ticket.state) == ("consumer_rights", "intake", "submitted")
    assert ticket.candidates == [["online_shopping", 0.5]] and ticket.keywords == ["退款"]
    assert [t.no for t in intake_queue(services)] == [ticket.no]
    notice = next(text for to, text in deliver() if to == INTAKE_STAFF and ticket.no in text)
    assert "待确认分派" in notice and "网络购物/直播电商 0.5" in notice
    created = services.store.transcript(ticket.no)[0]
    assert created["routed"] == "intake" and created["candidates"] == [["online_shopping", 0.5]]


def test_a_confident_route_is_not_in_the_intake_queue(wechat, services):
    reply = answer_all(wechat, wechat.text(CONSUMER, "在稷下街道华联超市买的牛奶过期了，要求退款").content)
    ticket = ticket_of(services, reply)
    assert ticket.unit == "food_business" and intake_queue(services) == []


# ── duplicates ────────────────────────────────────────────────────────────────

def test_the_same_complaint_again_joins_the_open_ticket(wechat, services, deliver):
    reply = answer_all(wechat, wechat.text(CONSUMER, "在稷下街道华联超市买的牛奶过期了，喝了肚子疼，要求退款").content)
    first = ticket_of(services, reply)
    # while it is open, more words go to that ticket, and the consumer learns how to start anew
    assert "新投诉" in wechat.text(CONSUMER, "小票我也找到了").content
    assert "请简要描述" in wechat.text(CONSUMER, "新投诉").content
    again = wechat.text(CONSUMER, "华联超市卖给我的牛奶是过期的，我喝完拉肚子，请你们处理，要求赔偿").content
    reply = answer_all(wechat, again, merchant="华联超市（稷下店）")
    assert f"已有投诉工单 {first.no}" in reply and "不再重复登记" in reply
    assert len(services.store.consumer_tickets(CONSUMER)) == 1
    ticket = services.store.load_ticket(first.no)
    assert ticket.repeats == 1
    assert any(e.get("event") == "duplicate_joined" for e in services.store.transcript(first.no))
    assert any(to == FOOD_STAFF and f"已并入 {first.no}" in text for to, text in deliver())


def test_another_matter_with_the_same_merchant_is_a_new_ticket(wechat, services):
    first = ticket_of(services, answer_all(
        wechat, wechat.text(CONSUMER, "在稷下街道华联超市买的牛奶过期了，要求退款").content))
    wechat.text(CONSUMER, "新投诉")
    reply = answer_all(wechat, wechat.text(CONSUMER, "华联超市的价签写着12元，结账收了18元，要求退差价").content,
                       merchant="稷下街道华联超市")
    second = ticket_of(services, reply)
    assert second.no != first.no and second.category == "price"
    user = services.store.load_user(CONSUMER)
    assert user["ticket"] == second.no and json.loads(user["also"]) == [first.no]


def test_the_same_matter_with_another_merchant_is_a_new_ticket(wechat, services):
    first = ticket_of(services, answer_all(
        wechat, wechat.text(CONSUMER, "在稷下街道华联超市买的牛奶过期了，要求退款").content))
    wechat.text(CONSUMER, "新投诉")
    second = ticket_of(services, answer_all(
        wechat, wechat.text(CONSUMER, "在辛店街道佳惠超市买的牛奶也过期了，要求退款").content))
    assert second.no != first.no and second.merchant_name != first.merchant_name

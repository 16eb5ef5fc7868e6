"""Triage on its own (flows/triage.py): kind, place, FAQ, referral, the decision, duplicates.

Pure: no Redis, no webhook. The messages are written by the team for these tests, the way
consumers in Linzi write to the account. tests/test_intake_routing.py plays the same rules
through the webhook.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows import intake
from flows.routing import Router
from flows.triage import PhraseSet, Triage

REPO = Path(__file__).resolve().parents[1]
TABLE_PATH = REPO / "config.example.yaml"


@pytest.fixture(scope="module")
def rt() -> Router:
    return Router.from_yaml(TABLE_PATH)


@pytest.fixture(scope="module")
def tr(rt) -> Triage:
    return rt.triage


def draft_of(tr: Triage, text: str) -> intake.IntakeDraft:
    return intake.start(text, hooks=tr)


# ── kind: 投诉 / 举报 / both / 咨询 (DOMAIN.md §1.1) ───────────────────────────────

@pytest.mark.parametrize("text,kind", [
    # 投诉: the consumer's own dispute, with a demand or a refusal
    ("在稷下街道佳惠超市买的酸奶，打开全是结块的，店员说不管，要求退款", "complaint"),
    ("孩子的游泳卡还剩二十多次，游泳馆说要装修关门，一直拖着不退钱", "complaint"),
    ("和家人在饭店吃饭，自带的酒被收了50元开瓶费，这合理吗？", "complaint"),  # a question, but a dispute
    ("我在网上买的衣服，商家不给七天无理由退货，怎么办？", "complaint"),
    # 举报: a check is asked for, or a violation told without a dispute of one's own
    ("举报齐都镇一家小作坊生产辣条，没有营业执照，卫生条件很差", "report"),
    ("我们小区楼下的电梯三天两头困人，太危险了，请尽快派人来查", "report"),
    ("菜市场东头那家卖肉的一直在卖注水肉，还没有营业执照", "report"),
    # both: a dispute of one's own and a request to check the merchant
    ("在辛店街道一家烧烤店吃完拉肚子，要求赔偿医药费，也请你们查查他们后厨", "both"),
    ("药店卖给我的感冒药是过期的，要求退一赔三，希望你们依法查处", "both"),
    # 咨询: a question, no dispute told
    ("请问网上买的东西七天无理由退货，运费谁出？", "consult"),
    ("请问卖过期食品的超市怎么举报？", "consult"),  # asks how to report: a question, not a report
    ("想问一下投诉一般多久能有结果", "consult"),
])
def test_kind(tr, text, kind):
    assert tr.classify(text).kind == kind, tr.classify(text)


def test_a_message_with_nothing_clear_is_a_complaint_but_not_sure(tr):
    k = tr.classify("华联超市的面包")
    assert k.kind == "complaint" and not k.confident


def test_both_splits_the_report_clause_off_the_complaint(tr):
    text = "在辛店街道一家烧烤店吃完拉肚子，要求赔偿医药费，也请你们查查他们后厨。"
    k = tr.classify(text)
    assert k.kind == "both"
    assert "查查" not in k.complaint_text and "拉肚子" in k.complaint_text  # what the merchant may see
    assert k.complaint_text.endswith("。") and k.report_text == text
    assert k.cues["report"] == ["查查"] and "要求" in k.cues["dispute"]


def test_phrase_set_longest_match_hides_contained():
    ps = PhraseSet({"举报": 3, "怎么举报": 3, "吗": 0.5})
    assert ps.find("请问怎么举报吗") == [(2, "怎么举报"), (6, "吗")]
    assert ps.score("举报举报") == (3.0, ["举报"])  # once per message
    assert PhraseSet(None).score("任何") == (0, [])


# ── place: the merchant's 镇/街道, the district, outside (DOMAIN.md §1.3) ──────────

@pytest.mark.parametrize("text,answer,kind,name,station", [
    ("在稷下街道华联超市买的", False, "town", "稷下街道", "station_jixia"),
    ("辛店那家饭店", False, "town", "辛店街道", "station_xindian"),
    ("淄博市临淄区金岭镇回民市场", False, "town", "金岭回族镇", "station_jinling"),
    ("临淄区的一家健身房", False, "district", "临淄区", ""),
    ("张店区万象汇", False, "outside", "张店区", ""),
    # short, ambiguous names count only as an answer to "where is the merchant?"
    ("凤凰", True, "town", "凤凰镇", "station_fenghuang"),
    ("在金山", True, "town", "金山镇", "station_jinshan"),
    ("广州市白云区", True, "outside", "广州", ""),
    ("河北省沧州市", True, "outside", "河北省", ""),    # any other 省/市/区/县 in an answer
])
def test_locate(tr, text, answer, kind, name, station):
    place = tr.locate(text, answer=answer)
    assert place is not None and (place.kind, place.name, place.station) == (kind, name, station), place


def test_short_names_and_common_words_are_not_places(tr):
    assert tr.locate("买了一只凤凰牌自行车") is None          # 凤凰 only in an answer
    assert tr.locate("小区门口的超市", answer=True) is None   # 小区/超市 are not 区/市
    assert tr.locate("淄博市", answer=True) is None           # the city that contains Linzi
    assert tr.locate("") is None


def test_outside_agency(tr):
    assert tr.locate("张店").agency == "张店区市场监督管理局"
    assert "市场监督管理" in tr.locate("杭州").agency  # the default: the merchant's own bureau


# ── the intake hooks ─────────────────────────────────────────────────────────

def test_station_category_asks_the_town_when_not_given(tr):
    d = draft_of(tr, "做的美甲两天就掉了，还被推销办卡，要求退款")
    assert d.place_mode == "station" and d.state == "merchant"
    intake.answer_text(d, "小美美甲", hooks=tr)
    assert d.state == "place"  # needed for routing: which 所
    assert "哪个镇" in intake.prompt(d)
    intake.answer_text(d, "雪宫", hooks=tr)
    assert (d.place, d.place_kind, d.place_name, d.state) == ("station_xuegong", "town", "雪宫街道", "phone")


def test_a_town_in_the_text_is_enough(tr):
    d = draft_of(tr, "在齐都镇一家理发店烫发，头发全烫焦了，要求赔偿")
    assert d.place == "station_qidu" and not d.asks_place() and d.state == "phone"
    assert d.merchant == "齐都镇一家理发店"


def test_office_category_does_not_ask_the_town(tr):
    d = draft_of(tr, "华联超市卖过期牛奶，要求退款")
    assert d.place_mode == "" and not d.place_wanted and d.state == "phone"


def test_online_shop_asks_where_the_seller_is(tr):
    d = draft_of(tr, "在淘宝上买的电饭煲收到就是坏的，卖家不给退货，要求退款")
    assert d.place_mode == "check" and d.state == "merchant"
    intake.answer_text(d, "美的电饭煲专卖网店", hooks=tr)
    assert d.state == "place" and "网店" in intake.prompt(d)
    intake.answer_text(d, "浙江省杭州市", hooks=tr)
    assert d.place_kind == "outside"
    assert tr.early(d).action == "outside"


def test_an_outside_place_in_the_facts_is_asked_not_guessed(tr):
    d = draft_of(tr, "我家住张店，在商场买的羽绒服穿了一周就往外钻毛，要求退货")
    assert d.merchant == "" and d.place_hint == "张店区" and d.place_kind == "" and tr.early(d) is None
    intake.answer_text(d, "银座商城", hooks=tr)
    assert d.state == "place" and "您提到了张店区" in intake.prompt(d)
    intake.answer_text(d, "不是，在临淄齐都镇", hooks=tr)
    assert d.place == "station_qidu" and tr.early(d) is None
    # ...and the other way round: yes, it is there → referred
    d = draft_of(tr, "我家住张店，在商场买的羽绒服穿了一周就往外钻毛，要求退货")
    intake.answer_text(d, "银座商城", hooks=tr)
    intake.answer_text(d, "是的", hooks=tr)
    early = tr.early(d)
    assert early.action == "outside" and early.place == "张店区" and "张店区" in early.agency


def test_unknown_place_is_kept_and_staff_decide(tr):
    d = draft_of(tr, "洗衣店把我的羊绒大衣洗缩水了，不肯赔偿")
    assert d.merchant == "洗衣店" and d.state == "place"
    intake.answer_text(d, "不清楚", hooks=tr)
    assert (d.place_kind, d.place_done, d.state) == ("unknown", True, "phone")
    d = draft_of(tr, "洗衣店把我的羊绒大衣洗缩水了，不肯赔偿")
    intake.answer_text(d, "就在我家楼下", hooks=tr)  # not a place we know: kept as said
    assert (d.place_kind, d.place_name, d.state) == ("unknown", "就在我家楼下", "phone")


def test_location_answers_the_place(tr):
    d = draft_of(tr, "美容院做皮肤管理把脸做过敏了，不承认，要求赔偿")
    intake.answer_text(d, "丽人美容院", hooks=tr)
    assert d.state == "place"
    reply = intake.answer_location(d, "山东省淄博市临淄区闻韶街道桓公路", hooks=tr)
    assert d.place == "station_wenshao" and d.place_name.startswith("山东省淄博市临淄区闻韶街道")
    assert "已收到位置" in reply.text and d.state == "phone"


def test_report_and_consult_slots(tr):
    d = draft_of(tr, "举报：齐都镇一家小作坊生产辣条，没有营业执照，卫生条件很差")
    assert d.kind == "report" and d.has_demand()  # a report has no demand
    intake.answer_text(d, "路边辣条作坊", hooks=tr)
    assert d.state == "phone" and "匿名" in intake.prompt(d)
    intake.answer_text(d, "匿名", hooks=tr)
    assert d.anonymous and d.state == "photos"
    intake.answer_text(d, "完成", hooks=tr)
    assert d.state == "confirm" and "【电话】匿名" in intake.prompt(d) and "请核对您的举报" in intake.prompt(d)
    c = draft_of(tr, "请问装修公司的资质去哪里查？")
    assert c.kind == "consult" and c.state == "phone" and "工作人员" in intake.prompt(c)


def test_bare_intent_words_preset_the_kind(tr):
    d = draft_of(tr, "我要举报")
    assert (d.kind, d.facts, d.state) == ("report", "", "facts") and "举报" in intake.prompt(d)
    d = draft_of(tr, "投诉")
    assert (d.kind, d.facts, d.state) == ("complaint", "", "facts")


# ── at once: out of scope, FAQ ──────────────────────────────────────────────

@pytest.mark.parametrize("text,agency,contact", [
    ("小区物业天天催交物业费，电梯坏了半年也不修", "住房和城乡建设", "12345"),  # 物业 is not ours
    ("家里的宽带老是掉线，打运营商客服也没人来修", "通信管理", "12300"),
    ("银行信用卡乱扣年费，客服一直推诿", "金融监管", "12378"),
    ("医院做手术出了医疗事故，要求赔偿", "卫生健康", "12345"),
    ("快递公司把我的包裹弄丢了，快递员不接电话", "邮政管理", "12305"),
])
def test_out_of_scope_is_referred_at_once(tr, text, agency, contact):
    d = draft_of(tr, text)
    early = tr.early(d)
    assert early is not None and early.action == "refer", tr.router.route(text)
    assert agency in early.agency and contact in early.contact


def test_out_of_scope_with_a_close_runner_up_goes_to_staff(tr):
    # a phone bought at the operator's shop: quality is ours, the lead is too thin to refer
    d = draft_of(tr, "在移动营业厅买的手机，用了三天就黑屏死机，要求换货")
    assert tr.early(d) is None
    plan = tr.decide(d).plans[0]
    assert plan.routed in ("intake", "category") and plan.unit in ("consumer_rights", "product_quality")


@pytest.mark.parametrize("text,faq_id", [
    ("请问网上买的衣服七天无理由退货，来回运费应该谁出？", "seven_days"),
    ("请问冰箱三包是怎么规定的？", "three_guarantees"),
    ("请问怎么举报？可以匿名吗？", "how_to_report"),
    ("想问一下投诉一般多久能处理", "time_limits"),
    ("请问你们几点下班？", "contact"),
])
def test_faq_answers_questions(tr, text, faq_id):
    early = tr.early(draft_of(tr, text))
    assert early is not None and early.action == "faq" and early.faq_id == faq_id and early.answer


def test_a_question_without_an_answer_goes_to_staff(tr):
    d = draft_of(tr, "请问你们能帮忙看看一家装修公司有没有资质吗？")
    assert d.kind == "consult" and tr.early(d) is None
    d.phone = "13800001234"
    plans = tr.decide(d).plans
    assert [(p.kind, p.unit, p.routed) for p in plans] == [("consult", "consumer_rights", "intake")]


# ── the decision ──────────────────────────────────────────────────────────────

def _complete(d: intake.IntakeDraft, merchant="某商家", demand="退款", phone="13800001234"):
    d.merchant = d.merchant or merchant
    d.demand = d.demand or demand
    d.phone = d.phone or phone
    return d


def test_decide_routes_by_category_or_station_or_intake(tr):
    plan = tr.decide(_complete(draft_of(tr, "在稷下街道华联超市买的牛奶过期了，要求退款"))).plans[0]
    assert (plan.unit, plan.routed, plan.station) == ("food_business", "category", "station_jixia")
    plan = tr.decide(_complete(draft_of(tr, "在朱台镇一家理发店染发，头皮过敏起泡，要求赔偿"))).plans[0]
    assert (plan.category, plan.unit, plan.routed) == ("beauty_salon", "station_zhutai", "station")
    plan = tr.decide(_complete(draft_of(tr, "买的东西有问题，商家态度很差，一直不给退款"))).plans[0]
    assert (plan.unit, plan.routed, plan.confident) == ("consumer_rights", "intake", False)
    assert plan.candidates == [["online_shopping", 0.5]] and plan.hits == ["退款"]
    plan = tr.decide(_complete(draft_of(tr, "买的东西有问题，商家态度很差，一直不给处理"))).plans[0]
    assert (plan.unit, plan.routed, plan.candidates) == ("consumer_rights", "intake", [])


def test_decide_both_makes_two_plans(tr):
    d = _complete(draft_of(tr, "在辛店街道一家烧烤店吃完拉肚子，要求赔偿医药费，也请你们查查他们后厨。"))
    plans = tr.decide(d).plans
    assert [p.kind for p in plans] == ["complaint", "report"]
    assert "查查" not in plans[0].facts and "查查" in plans[1].facts
    assert plans[0].unit == plans[1].unit == "catering"


# ── duplicates ────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("a,b,same", [
    ("华联超市", "稷下街道华联超市", True),
    ("临淄区稷下街道的华联超市", "华联超市（稷下店）", True),
    ("佳惠超市", "华联超市", False),
    ("小美美甲店", "小美美甲", True),
    ("", "华联超市", False),
])
def test_same_merchant(tr, a, b, same):
    assert tr.same_merchant(a, b) is same


def test_same_matter(tr):
    assert tr.same_matter("牛奶过期了", "food_safety", "买的面包也过期", "food_safety")
    assert tr.same_matter("买的牛奶过期了，喝了肚子疼", "", "牛奶过期了喝了肚子疼，要求退款", "")
    assert not tr.same_matter("牛奶过期了", "food_safety", "收银员多收了我五块钱", "price")


# ── config ────────────────────────────────────────────────────────────────────

def test_sections_missing_from_a_config_come_from_the_shipped_file(rt):
    cfg = yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))
    for name in ("triage", "places", "faq"):
        cfg.pop(name)
    router = Router.from_config(cfg)
    assert router.triage.locate("稷下街道").station == "station_jixia"
    assert router.triage.faq_answer("七天无理由退货怎么规定")


def test_places_must_name_stations(rt):
    cfg = yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))
    cfg["places"]["towns"][0]["station"] = "price"  # an office, not a 所
    with pytest.raises(ValueError, match="not a station"):
        Router.from_config(cfg)


def _bot(*args: str) -> str:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_triage_explain_command():
    out = _bot("triage", "explain", "手机不是在网上买的，是在齐都镇的手机店买的，屏幕坏了，要求换货")
    assert "tokens:" in out and "网上" in out
    assert "negated:  网上" in out
    assert "product_quality" in out and "confident" in out
    assert "kind:     complaint" in out
    assert "place:    town 齐都镇 → 齐都市场监管所" in out
    assert "decision: complaint ticket → 产品质量安全监督科 (category)" in out


def test_triage_eval_command_on_the_team_samples(tmp_path):
    out = _bot("triage", "eval", str(REPO / "samples" / "complaints.csv"))
    assert "accuracy (top-1)        100.0%" in out
    assert "per label" in out and "per predicted category" in out and "confusion" in out
    assert "skipped 1 rows with unmapped labels" in out  # the one meant for the intake queue
    # with a label map: their labels → ours
    csv_path = tmp_path / "theirs.csv"
    csv_path.write_text("id,text,category\n1,超市买的牛奶过期了，要求退款,食品\n2,饭店的菜里有苍蝇,食品\n"
                        "3,理发店烫发烫坏了头发,美发\n", encoding="utf-8")
    map_path = tmp_path / "map.yaml"
    map_path.write_text("labels:\n  食品: [food_safety, catering]\n  美发: beauty_salon\n", encoding="utf-8")
    out = _bot("triage", "eval", str(csv_path), "--map", str(map_path), "--errors", "5")
    assert "3 rows" in out and "accuracy (top-1)        100.0%" in out


def test_triage_eval_rejects_a_csv_without_the_columns(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.csv"
    bad.write_text("id,body\n1,hello\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "triage", "eval", str(bad)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "text and category" in result.stderr


def test_a_question_that_turns_out_to_be_a_dispute_becomes_a_complaint(tr):
    d = draft_of(tr, "请问超市卖过期食品怎么处理？")
    assert d.kind == "consult" and d.state == "phone"
    intake.answer_text(d, "我在华联超市买的牛奶过期了，商家不给退，要求退款", hooks=tr)
    assert d.kind == "complaint" and d.merchant == "华联超市" and d.demand == "退款" and d.state == "phone"

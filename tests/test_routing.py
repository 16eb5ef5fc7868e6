"""Router (flows/routing.py) against the routing table in config.example.yaml at the repo root.

See the accuracy on the shared real data set with (README "Routing"):
    .venv/bin/python -m bot triage eval ../shared/data/complaints/complaints.csv --map samples/shared_label_map.yaml
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from types import SimpleNamespace

import jieba
import pytest
import yaml

from flows.routing import UNMATCHED_LABEL, Route, Router, normalize

REPO = Path(__file__).resolve().parents[1]
TABLE_PATH = REPO / "config.example.yaml"
SAMPLES_PATH = REPO / "samples" / "complaints.csv"
SHARED_MAP = REPO / "samples" / "shared_label_map.yaml"
SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "complaints" / "complaints.csv"

# The 32 multi-character terms that jieba's default dictionary splits (DOMAIN.md §6).
SPLIT_TERMS = (
    "最低消费 蓝帽子 免费体检 特医食品 械字号 质量问题 3C认证 上牌费 金融服务费 困人 游乐设施 "
    "价格欺诈 虚构原价 先涨后降 虚假宣传 引人误解 拼多多 七天无理由 跑路 培训贷 纹绣 皮肤管理 "
    "装修公司 鬼秤 傍名牌 月嫂 上门维修 霸王条款 概不退换 最终解释权 定金不退 强制消费"
).split()

# One realistic first message per category, written for this test (not the sample CSV),
# with the unit expected from DOMAIN.md §1.10 / §6.
REACH = [
    ("food_safety", "food_business", "超市买的面包还没到保质期就长毛了，孩子吃了拉肚子，要求赔偿"),
    ("catering", "catering", "在学校门口的餐馆吃饭，饭菜里有一只蟑螂，老板说是从外面爬进来的"),
    ("special_food", "special_food", "药店店员推荐的保健食品说能降血糖，包装上根本没有蓝帽子标志"),
    ("drugs_cosmetics", "drugs_devices", "网红化妆品用了三天脸就烂了，查不到备案，商家不承认"),
    ("product_quality", "product_quality", "买的洗衣机用了一个月就漏电，售后说要收维修费，可还在保修期内"),
    ("automobile", "product_quality", "新买的电动车骑了两周电池就鼓包了，车行不给换，说是我充电方式不对"),
    ("special_equipment", "special_equipment", "游乐场的过山车开到一半停住了，我们在上面挂了二十分钟"),
    ("price", "price", "景区停车场没有明码标价，停了两小时收了80元停车费"),
    ("advertising", "advertising_online", "电视购物广告说这个床垫能治颈椎病，属于虚假广告吧"),
    ("online_shopping", "advertising_online", "淘宝买的东西迟迟不发货，联系卖家也不回，申请仅退款被拒"),
    ("prepaid_card", "consumer_rights", "小区的洗车店突然关门了，我会员卡里还有1500元余额"),
    ("education_training", "consumer_rights", "给孩子报的网课根本不是宣传的名师上课，要求退学费"),
    ("beauty_salon", "consumer_rights", "美甲店做的美甲两天就掉了，还被推销办卡"),
    ("decoration", "consumer_rights", "装修队贴的瓷砖空鼓一大片，找工长返工一直推脱"),
    ("clothing_daily", "product_quality", "买的裤子洗了一次就严重掉色，吊牌上写的是纯棉"),
    ("metrology", "metrology", "菜市场卖菜的电子秤被动过手脚，一斤少了二两，典型的短秤"),
    ("counterfeit_ip", "ip", "专卖店卖的名牌包是山寨货，商标都印歪了，老板还说是正品"),
    ("services_contract", "consumer_rights", "影楼拍婚纱照说好送十张精修，现在要另外加钱，合同写着概不退换"),
    ("accommodation", "consumer_rights", "宾馆房间的床单有污渍，跟前台反映也不给换，要求退房费"),
    ("out_of_scope", "consumer_rights", "银行信用卡乱扣年费，打客服电话一直推诿"),
]


@pytest.fixture(scope="module")
def table() -> dict:
    with open(TABLE_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def rt() -> Router:
    """The router built from config.example.yaml (one jieba tokenizer for the whole module)."""
    return Router.from_yaml(TABLE_PATH)


@pytest.fixture(scope="module")
def tiny() -> Router:
    """A two-category table in list format: ties, formats, defaults."""
    return Router.from_table(
        [
            {"id": "a", "label": "甲", "unit": "u1", "keywords": ["苹果", "香蕉"]},
            {"id": "b", "label": "乙", "unit": "u2", "keywords": [{"苹果": 1}, "葡萄干"]},
        ],
        fallback_unit="intake",
    )


# ── table shape ────────────────────────────────────────────────────────────────


def test_table_has_the_19_seed_categories_plus_accommodation(table, rt):
    ids = [c["id"] for c in table["routing"]["categories"]]
    assert len(ids) == len(set(ids)) == 20
    assert [c.id for c in rt.categories] == ids
    oos = rt.category("out_of_scope")
    assert oos.out_of_scope and oos.unit == "consumer_rights" and oos.refer_to
    assert rt.category("special_equipment").urgent
    assert table["routing"]["fallback_unit"] == "consumer_rights"


def test_units_cover_the_bureau(table, rt):
    units = {u["id"]: u for u in table["units"]}
    offices = [u for u in units.values() if u.get("kind") == "office"]
    stations = [u for u in units.values() if u.get("kind") == "station"]
    assert len(offices) >= 8 and len(stations) >= 2
    assert all(s["name"].endswith("市场监管所") for s in stations)
    # every station serves at least one town of the places table, every town has a station
    towns = table["places"]["towns"]
    assert {s["id"] for s in stations} == {t["station"] for t in towns}
    assert len(towns) == 12  # Linzi: 5 街道 + 7 镇
    assert {c.unit for c in rt.categories} <= set(units)
    assert rt.unit_name("consumer_rights").startswith("消费者权益保护科")
    assert rt.unit_kind("station_jixia") == "station" and rt.unit_kind("price") == "office"


def test_every_test_message_category_is_in_the_table(rt):
    assert sorted(c for c, _, _ in REACH) == sorted(c.id for c in rt.categories)


# ── routing ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("category,unit,text", REACH, ids=[c for c, _, _ in REACH])
def test_every_category_is_reachable(rt, category, unit, text):
    r = rt.route(text)
    assert isinstance(r, Route)
    assert (r.category, r.unit) == (category, unit), r
    assert r.label == rt.category(category).label
    assert r.confident, r
    assert r.hits and r.score > 0


@pytest.mark.parametrize("term", SPLIT_TERMS)
def test_split_terms_stay_whole(rt, term):
    for text in (term, f"我遇到了{term}的问题", f"商家说{term}，我不同意"):
        assert normalize(term) in rt.tokens(text), rt.tokens(text)
        assert term in rt.route(text).hits


def test_multichar_terms_stay_whole_in_real_sentences(rt):
    r = rt.route("网店不同意七天无理由退货，还说概不退换")
    assert r.category == "online_shopping"
    assert r.hits == ("网店", "七天无理由", "退货", "概不退换")
    r = rt.route("菜市场的摊贩缺斤短两")
    assert r.category == "metrology" and r.hits == ("缺斤短两",)
    assert "缺斤短两" in rt.tokens("菜市场的摊贩缺斤短两")
    r = rt.route("健身房合同里全是霸王条款")
    assert "霸王条款" in r.hits and "霸王条款" in rt.tokens("健身房合同里全是霸王条款")


def test_global_jieba_is_not_touched(rt):
    assert "七天无理由" not in jieba.lcut("七天无理由退货")


def test_nothing_matched_goes_to_fallback(rt):
    for text in ("你好，请问你们几点下班？", "", "   ", "12345"):
        r = rt.route(text)
        assert r.category is None and r.unit == "consumer_rights"
        assert r.label == UNMATCHED_LABEL
        assert not r.confident and r.hits == () and r.candidates == () and r.score == 0.0


def test_top2_candidates_and_hits_in_order(rt):
    r = rt.route("在抖音直播间买的面膜，主播说是正品，用了三天脸上过敏")
    assert len(r.candidates) == 2
    (c1, s1), (c2, s2) = r.candidates
    assert c1 == r.category and s1 == r.score >= s2 > 0 and c1 != c2
    assert c1 == "drugs_cosmetics" and c2 in {"advertising", "online_shopping"}
    text = "买的牛奶过期了，打开还发霉，牛奶盒也鼓了"
    r = rt.route(text)
    assert r.hits == ("牛奶", "过期", "发霉")  # first appearance, each once
    assert r.category == "food_safety" and r.unit == "food_business"


def test_weak_words_alone_are_not_confident(rt):
    r = rt.route("效果不好，感觉被忽悠了")
    assert r.category == "advertising" and not r.confident


def test_ties_go_to_the_earlier_category_and_are_not_confident(tiny):
    r = tiny.route("苹果不好")
    assert r.candidates == (("a", 1.0), ("b", 1.0))
    assert r.category == "a" and r.unit == "u1" and not r.confident
    assert tiny.route("葡萄干发霉").category == "b"
    assert tiny.route("没有关键词").unit == "intake"


def test_longer_match_hides_contained_keyword(rt):
    r = rt.route("4S店收了我3000元金融服务费")
    assert "金融服务费" in r.hits and "服务费" not in r.hits
    assert r.candidates == (("automobile", 4.0),)
    # ...but an occurrence of its own still counts
    assert "服务费" in rt.route("金融服务费之外又收了服务费").hits


def test_long_keywords_match_even_if_the_tokenizer_splits_them(rt, monkeypatch):
    # Worst case tokenizer: single characters. Only the substring path can match.
    monkeypatch.setattr(rt, "_tok", SimpleNamespace(lcut=lambda t, HMM=True: list(t)))
    r = rt.route("商家拒绝七天无理由退货")
    assert r.hits == ("七天无理由",)  # 退货 (2 chars) needs a token
    assert r.category == "online_shopping"


def test_text_is_normalized(rt):
    assert rt.route("４Ｓ店拒绝退还定金").category == "automobile"
    assert rt.route("衣服没有3c认证").hits == ("衣服", "3C认证")


def test_out_of_scope_referral_urgent_and_station(rt):
    r = rt.route("家里宽带一直断网，运营商不给修")
    assert r.category == "out_of_scope" and r.out_of_scope and r.unit == "consumer_rights"
    assert "通信管理" in r.refer_to and "12300" in r.refer_contact
    r = rt.route("小区物业公司不管事，还天天催交物业费")
    assert r.out_of_scope and "住房和城乡建设" in r.refer_to and "12345" in r.refer_contact
    # 物业 *price* issues stay with the bureau (价格科), ties go to the earlier category
    assert rt.route("小区物业公司乱收费").category == "price"
    r = rt.route("临淄区稷下街道某商场的电梯困人")
    assert r.category == "special_equipment" and r.urgent and not r.out_of_scope
    assert r.refer_to is None and r.station == "station_jixia"
    assert rt.station_for("辛店街道的一家饭店") == "station_xindian"
    assert rt.route("齐都镇加油站加油机不准").station == "station_qidu"
    assert rt.route("饭店卫生太差").station is None


def test_route_is_frozen(rt):
    r = rt.route("电梯困人")
    with pytest.raises(Exception):
        r.category = "x"  # type: ignore[misc]


# ── table validation ──────────────────────────────────────────────────────────


def test_table_formats(tiny):
    assert tiny.category("a").keywords == (("苹果", 1.0), ("香蕉", 1.0))
    assert tiny.category("b").keywords == (("苹果", 1.0), ("葡萄干", 1.0))


@pytest.mark.parametrize(
    "cats,kwargs,message",
    [
        ([{"id": "a", "label": "甲", "unit": "nope", "keywords": ["苹果"]}],
         {"units": [{"id": "intake"}], "fallback_unit": "intake"}, "unknown unit"),
        ([{"id": "a", "label": "甲", "unit": "u", "keywords": ["苹果"]}] * 2, {}, "duplicate category"),
        ([{"id": "a", "label": "甲", "unit": "u", "keywords": {"苹果": 0}}], {}, "must be > 0"),
        ([{"id": "a", "label": "甲", "unit": "u", "keywords": ["苹果", "苹果"]}], {}, "duplicate keyword"),
        ([{"id": "a", "label": "甲", "unit": "u", "keywords": ["苹果"],
           "referrals": {"某局": ["香蕉"]}}], {}, "not in its keywords"),
        ([{"id": "a", "label": "甲", "keywords": ["苹果"]}], {}, "lacks 'unit'"),
        ([], {}, "empty"),
    ],
)
def test_bad_tables_are_rejected(cats, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Router.from_table(cats, **kwargs)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_sample_csv_shape(rt):
    rows = _read_csv(SAMPLES_PATH)
    assert list(rows[0]) == ["id", "text", "category", "kind"]
    assert len(rows) >= 50 and len({r["id"] for r in rows}) == len(rows)
    assert {r["category"] for r in rows} <= {c.id for c in rt.categories} | {""}
    assert {r["kind"] for r in rows} == {"complaint", "report", "both", "consult"}
    phones = [p for r in rows for p in re.findall(r"1\d{10}", r["text"])]
    assert phones and all(p.startswith("1380000") for p in phones)  # obviously fake


def test_sample_csv_is_routed_correctly(rt):
    """All rows (100%), not a 90% floor: the set is small and written for this table.
    An empty category means: nothing confident, the intake queue."""
    wrong = []
    for row in _read_csv(SAMPLES_PATH):
        r = rt.route(row["text"])
        got = r.category if r.confident else ""
        if got != row["category"] or rt.triage.classify(row["text"]).kind != row["kind"]:
            wrong.append((row["id"], row["category"], row["kind"], got, r.hits))
    assert not wrong


# ── negation, stop phrases, phrases, explain ──────────────────────────────────


@pytest.fixture(scope="module")
def no_negation() -> Router:
    """The same table with negation switched off: shows what negation changes."""
    cfg = yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))
    cfg["routing"]["negation"] = {}
    return Router.from_config(cfg, triage=False)


@pytest.mark.parametrize("text,category,negated", [
    # the channel is denied: a shop, not an online purchase (网络交易科 would ask for the seller)
    ("衣服不是网购的，在商场专柜买的，洗一次就缩水", "clothing_daily", "网购"),
    ("手机不是在网上买的，是在手机店买的", "product_quality", "网上"),
    ("没有在网上买，是在店里买的手机", "product_quality", "网上"),
    # the claim is denied: a quality complaint, not a counterfeit one
    ("不是假货，就是质量问题", "product_quality", "假货"),
    ("这双鞋不是假冒的，鞋底开胶了", "clothing_daily", "假冒"),
])
def test_negation_changes_the_outcome(rt, no_negation, text, category, negated):
    r = rt.route(text)
    assert (r.category, r.confident) == (category, True), r
    assert negated in r.negated and negated not in r.hits
    before = no_negation.route(text)
    assert (before.category, before.confident) != (category, True)  # wrong or unsure without it


def test_topic_words_and_absences_are_not_negated(rt):
    assert rt.route("这个饭几乎没有肉，米饭也没有").negated == ()
    r = rt.route("这家店的商品没有明码标价")
    assert r.category == "price" and r.negated == ()
    r = rt.route("牛奶没有过期，但是喝了拉肚子")  # negated, yet still food: 拉肚子
    assert r.category == "food_safety" and r.negated == ("过期",) and "过期" not in r.hits


def test_stop_phrases_hide_contact_boilerplate(rt):
    # "我的手机号" is how a phone number is given, not a telecom complaint
    r = rt.route("我的手机号是13800001234，理发店剪头发多收了钱")
    assert r.category == "beauty_salon" and "手机号" not in r.hits and r.candidates[1][0] == "price"
    assert rt.route("我的手机号被停机了，营业厅说欠费").category == "out_of_scope"
    assert "最好" not in rt.route("最好能给我退款").hits


def test_phrases_match_in_order_within_a_sentence(rt):
    r = rt.route("商场的扶梯突然停了，我妈摔了一跤")
    assert "扶梯…摔" in r.hits and r.category == "special_equipment"
    assert "扶梯…摔" not in rt.route("我摔了一跤，是在扶梯旁边").hits       # wrong order
    assert "回家…一称" not in rt.route("回家了。一称只有八两").hits           # another sentence


def test_explain_shows_the_reasoning(rt):
    info = rt.explain("手机不是在网上买的，屏幕坏了")
    assert "网上" in info["tokens"] and info["negated"] == ["网上"]
    assert info["scores"][0][0] == "product_quality"
    assert ("屏幕", 1.0) in info["scores"][0][2]
    assert info["route"].category == "product_quality"


def test_negation_words_must_be_keywords():
    with pytest.raises(ValueError, match="negation words"):
        Router.from_table([{"id": "a", "label": "甲", "unit": "u", "keywords": ["苹果"]}],
                          negation={"words": ["香蕉"]})
    with pytest.raises(ValueError, match="stop phrases"):
        Router.from_table([{"id": "a", "label": "甲", "unit": "u", "keywords": ["苹果"]}], ignore=["苹果"])


def test_place_modes(rt):
    assert rt.category("beauty_salon").place == "station"
    assert rt.category("online_shopping").place == "check"
    assert rt.category("food_safety").place == ""
    assert rt.route("理发店烫发烫坏了").place == "station"
    with pytest.raises(ValueError, match="place"):
        Router.from_table([{"id": "a", "label": "甲", "unit": "u", "keywords": ["苹果"], "place": "town"}])


# ── the shared real data set (not in the repo) ────────────────────────────────


@pytest.mark.skipif(not SHARED_CSV.is_file(), reason=f"{SHARED_CSV} not present")
def test_shared_real_complaints(rt):
    from bot.commands.triage import evaluate, format_report, read_mapping, read_rows

    rows = read_rows(str(SHARED_CSV))
    mapping = read_mapping(str(SHARED_MAP))
    assert len(rows) >= 1000
    assert {r["category"] for r in rows} <= set(mapping["labels"])
    ours = {c.id for c in rt.categories}
    assert {c for cats in [*mapping["labels"].values(), *mapping["adjacent"].values()] for c in cats} <= ours
    report = evaluate(rt, rows, mapping)
    print("\n" + format_report(report, rt, source=str(SHARED_CSV), mapping=str(SHARED_MAP)))
    assert report.rows == len(rows) and not report.unknown_labels
    # Floors only (the figures are in the README): the rows are reviews and work orders.
    assert report.correct / report.rows >= 0.70
    assert report.confident_correct / report.confident >= 0.80
    assert report.kinds["complaint"] / report.rows >= 0.9  # real complaints stay complaints

"""Intake: collect what a complaint needs, asking only for what is still missing.

A complaint needs (投诉登记表 式样一, DOMAIN.md §1.2): the facts, the merchant's name and
where it is, what the consumer asks for, a contact mobile number and optional evidence photos.
The consumer's first message usually carries some of these already; ``extract`` picks them
up, and the ``advance`` trigger below jumps to the first slot still empty.

    facts ─┐
    merchant ─┤ advance (first missing slot wins, in table order)
    place ────┤
    demand ───┤──────────────────────────────► confirm ──submit──► submitted
    phone ────┤
    photos ───┘                any asking state ──cancel──► cancelled

What a slot needs depends on the draft's ``kind`` (issue 6, flows/triage.py): a 举报 has no
demand and may be anonymous (phone: 匿名); a 咨询 needs only the question and a phone for the
call back; ``place`` (the merchant's 镇/街道) is asked only when routing needs it — an
ordinary dispute goes to the 市场监管所 of that town — or when the text hints at a place
outside the district (ask, do not guess). A WeChat location message answers it too.

Pure: no Flask, no Redis. The handler loads an ``IntakeDraft`` from storage, calls
``answer_text`` / ``answer_photo`` / ``answer_location`` and saves ``draft.to_dict()`` back.
``hooks`` (a flows.triage.Triage) fills kind and place from what the consumer wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from transitions import Machine, MachineError

ASKING = ["facts", "merchant", "place", "demand", "phone", "photos", "confirm"]
STATES = ASKING + ["submitted", "cancelled"]

# Order matters: transitions tries rows with the same trigger and source top to bottom and
# takes the first whose conditions hold, so this table *is* the question order.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "advance", "source": ASKING, "dest": "facts", "unless": "has_facts"},
    {"trigger": "advance", "source": ASKING, "dest": "merchant", "unless": "has_merchant"},
    {"trigger": "advance", "source": ASKING, "dest": "place", "conditions": "asks_place"},
    {"trigger": "advance", "source": ASKING, "dest": "demand", "unless": "has_demand"},
    {"trigger": "advance", "source": ASKING, "dest": "phone", "unless": "has_phone"},
    {"trigger": "advance", "source": ASKING, "dest": "photos", "unless": "photos_done"},
    {"trigger": "advance", "source": ASKING, "dest": "confirm"},
    {"trigger": "submit", "source": "confirm", "dest": "submitted", "conditions": "is_complete"},
    {"trigger": "cancel", "source": ASKING, "dest": "cancelled"},
]

MACHINE = Machine(
    model=None, states=STATES, transitions=TRANSITIONS, initial=None, auto_transitions=False
)

PROMPTS = {
    "facts": "请简要描述发生了什么：什么时间、买了什么或接受了什么服务、出了什么问题。",
    "merchant": "请告诉我商家的名称和地址（例如：XX超市，临淄区稷下街道XX路12号）。",
    "place": ("商家在临淄区哪个镇（街道）？例如：稷下街道、齐都镇。也可以直接发送商家的位置。"
              "商家不在临淄区请告诉我在哪个区县；不清楚请回复“不清楚”。"),
    "demand": "您希望商家怎么解决？例如：退款、退货、换货、维修、赔偿、道歉。",
    "phone": "请留一个能联系到您的11位手机号码。",
    "photos": "如有小票、订单截图、商品照片等证据，请直接发送图片；没有或发完了请回复“完成”。",
}
# The same questions for a 举报 / 咨询 where they read differently (issue 6).
KIND_PROMPTS = {
    "report": {
        "facts": "请简要描述您要举报的情况：哪家商家、什么时间、有什么违法行为。",
        "merchant": "请告诉我被举报商家的名称和地址（例如：XX超市，临淄区稷下街道XX路12号）。",
        "phone": "请留一个手机号码，方便告知核查结果；举报人信息严格保密。如要匿名举报，请回复“匿名”。",
        "photos": "如有照片、小票等证据，请直接发送图片；没有或发完了请回复“完成”。",
    },
    "consult": {
        "facts": "请直接写下您想咨询的问题。",
        "phone": "这个问题需要工作人员答复。请留一个手机号码，12315投诉举报中心的工作人员会尽快联系您。",
    },
}
PLACE_CHECK_PROMPT = ("网店或商家的经营者在哪里？（网店可在店铺首页的“资质”或营业执照信息里查看地址）"
                      "在临淄区请告诉我哪个镇（街道），不在请告诉我区县或城市；不清楚请回复“不清楚”。")
PLACE_HINT_PROMPT = ("您提到了{hint}。商家是在{hint}吗？是请回复“是”；商家在临淄区的话，请告诉我在哪个镇（街道），"
                     "也可以直接发送商家的位置。")
KIND_NAMES = {"complaint": "投诉", "report": "举报", "both": "投诉", "consult": "咨询"}

# A first message that only says what the person wants to do: no facts yet, the kind preset.
START_WORDS = {
    "投诉": "complaint", "我要投诉": "complaint", "新投诉": "complaint", "再投诉": "complaint",
    "新的投诉": "complaint", "另一个投诉": "complaint", "还要投诉": "complaint", "我想投诉": "complaint",
    "举报": "report", "我要举报": "report", "我想举报": "report", "新举报": "report",
    "咨询": "consult", "我要咨询": "consult", "我想咨询": "consult", "想咨询一下": "consult", "咨询一下": "consult",
}
ANONYMOUS_WORDS = {"匿名", "匿名举报", "不留", "不方便留", "不留了"}

CANCEL_WORDS = {"取消", "取消投诉", "不投诉了", "算了"}
DONE_WORDS = {"完成", "没有", "无", "跳过", "好了", "发完了", "没有了", "不用了"}
CONFIRM_WORDS = {"确认", "提交", "确定", "是", "对", "确认提交", "好的", "好"}

PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
DEMAND_WORDS = ("退款", "退货", "换货", "更换", "维修", "修理", "返修", "重作", "补足", "赔偿", "退一赔三", "退一赔十", "道歉", "退费", "退卡")
MERCHANT_RE = re.compile(
    r"([\u4e00-\u9fa5A-Za-z0-9（）()]{2,20}?"
    r"(?:4S店|专卖店|旗舰店|超市|商场|商店|公司|餐厅|饭店|酒店|药店|药房|健身房|美容院|理发店|"
    r"培训学校|培训机构|学校|门店|店|广场|中心|市场|驾校|影楼))"
)
# Words that end like a shop name but are not one ("这家店", "到店").
MERCHANT_STOP = re.compile(r"^(?:这家|那家|该|到|去|在|他们|这个|那个|网|本|门)")
PLACES_ENDING_IN_SHOP = re.compile(r"(?:辛店|张店)(?!铺)")
# "我在华联超市买的" → drop the "我在" that the greedy name pattern swallowed.
MERCHANT_LEAD = re.compile(r"^(?:请问|想问一下|想问)?(?:我们|我|本人|昨天|今天|前天|上周|刚才|刚刚)?(?:在|去|到|从|于|跟|和)?")


@dataclass(eq=False)  # identity equality: a shared Machine must never confuse two drafts
class IntakeDraft:
    state: str = "facts"
    facts: str = ""
    merchant: str = ""
    demand: str = ""
    phone: str = ""
    photos: list[str] = field(default_factory=list)
    photos_closed: bool = False
    # issue 6: what kind of message this is and where the merchant is (flows/triage.py)
    kind: str = "complaint"  # complaint | report | both | consult
    kind_preset: str = ""  # what a bare 我要举报 / 咨询 said before any facts
    anonymous: bool = False  # a 举报 without a phone number
    place: str = ""  # station unit id of the merchant's town
    place_name: str = ""  # 稷下街道 / 临淄区 / 张店区 / a location label / the answer as given
    place_kind: str = ""  # "" | town | district | outside | unknown
    place_agency: str = ""  # outside: who handles it there
    place_hint: str = ""  # a place outside the district the facts mention: ask, do not guess
    place_mode: str = ""  # the routed category's place mode: "" | station | check
    place_wanted: bool = False  # routing needs the place and it is not known yet
    place_done: bool = False  # the place is known, or the consumer answered the question
    error: str = ""  # why the last answer was not accepted, shown before the question

    # --- conditions named in TRANSITIONS (a slot is "had" when filled or not needed) ---------
    def has_facts(self) -> bool:
        return bool(self.facts)

    def has_merchant(self) -> bool:
        return bool(self.merchant) or self.kind == "consult"

    def asks_place(self) -> bool:
        return self.place_wanted and not self.place_done

    def has_demand(self) -> bool:
        return bool(self.demand) or self.kind in ("report", "consult")

    def has_phone(self) -> bool:
        return bool(self.phone) or (self.anonymous and self.kind == "report")

    def photos_done(self) -> bool:
        return self.photos_closed or self.kind == "consult"

    def is_complete(self) -> bool:
        return all((self.has_facts(), self.has_merchant(), self.has_demand(), self.has_phone()))

    # --- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "facts": self.facts,
            "merchant": self.merchant,
            "demand": self.demand,
            "phone": self.phone,
            "photos": list(self.photos),
            "photos_closed": self.photos_closed,
            "kind": self.kind,
            "kind_preset": self.kind_preset,
            "anonymous": self.anonymous,
            "place": self.place,
            "place_name": self.place_name,
            "place_kind": self.place_kind,
            "place_agency": self.place_agency,
            "place_hint": self.place_hint,
            "place_mode": self.place_mode,
            "place_wanted": self.place_wanted,
            "place_done": self.place_done,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IntakeDraft":
        draft = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "error"})
        if draft.state not in STATES:
            draft.state = "facts"  # a renamed state from an older release: start the questions again
        return draft


@dataclass(frozen=True)
class IntakeReply:
    text: str
    submitted: bool = False
    cancelled: bool = False


def normalise_phone(text: str) -> str:
    digits = re.sub(r"[\s\-–—()（）+]", "", text)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if re.fullmatch(r"1[3-9]\d{9}", digits) else ""


def extract(draft: IntakeDraft, text: str) -> None:
    """Fill whatever empty slots a free-text message already answers."""
    if not draft.phone:
        match = PHONE_RE.search(text)
        if match:
            draft.phone = match.group(1)
    if not draft.demand:
        found = [w for w in DEMAND_WORDS if w in text]
        if found:
            draft.demand = "、".join(dict.fromkeys(found))
    if not draft.merchant:
        # 辛店 / 张店 are places that end like a shop: hide their 店 from the pattern.
        masked = PLACES_ENDING_IN_SHOP.sub(lambda m: m.group(0)[:-1] + "\u25c7", text)
        for match in MERCHANT_RE.finditer(masked):
            name = MERCHANT_LEAD.sub("", text[match.start(1):match.end(1)])
            if not MERCHANT_STOP.match(name) and len(name) >= 3:
                draft.merchant = name
                break


class Hooks(Protocol):
    """What the intake asks of the triage (flows/triage.py ``Triage``); all pure."""

    def assess_draft(self, draft: "IntakeDraft") -> None: ...

    def place_answer(self, draft: "IntakeDraft", text: str, *, location: bool = False) -> str | None: ...


def start(text: str, hooks: Hooks | None = None) -> IntakeDraft:
    """A new draft from the consumer's first message (may be empty: they only said 投诉)."""
    draft = IntakeDraft()
    text = (text or "").strip()
    preset = START_WORDS.get(text.rstrip("。！!"))
    if preset:
        draft.kind = draft.kind_preset = preset
    elif text:
        draft.facts = text
        extract(draft, text)
    _assess(draft, hooks)
    _advance(draft)
    return draft


def _assess(draft: IntakeDraft, hooks: Hooks | None) -> None:
    if hooks is not None:
        hooks.assess_draft(draft)


def _advance(draft: IntakeDraft) -> None:
    _trigger(draft, "advance")


def _trigger(draft: IntakeDraft, name: str) -> bool:
    # Shared machine, no add_model: all conditions are named in TRANSITIONS (STYLE.md "C1").
    try:
        return bool(MACHINE.events[name].trigger(draft))
    except MachineError:
        return False


def answer_text(draft: IntakeDraft, text: str, hooks: Hooks | None = None) -> IntakeReply:
    """The consumer answered the current question with text."""
    text = (text or "").strip()
    if text in CANCEL_WORDS:
        _trigger(draft, "cancel")
        return IntakeReply(f"已取消本次{KIND_NAMES.get(draft.kind, '投诉')}。需要时随时发消息给我即可重新开始。",
                           cancelled=True)

    state = draft.state
    draft.error = ""
    if state == "facts":
        if len(text) < 4:
            draft.error = "描述太短了，请多说几句。"
        else:
            draft.facts = text
            extract(draft, text)
            _assess(draft, hooks)
    elif state == "merchant":
        named = re.sub(r"[^\w]", "", text)  # letters, digits, CJK
        if len(named) < 2 or text in DONE_WORDS | CONFIRM_WORDS:
            draft.error = "请写出商家的名称。"
        else:
            draft.merchant = text
            _assess(draft, hooks)
    elif state == "place":
        if hooks is None:
            draft.place_name, draft.place_kind, draft.place_done = text[:40], "unknown", True
        else:
            draft.error = hooks.place_answer(draft, text) or ""
    elif state == "demand":
        draft.demand = text
    elif state == "phone":
        phone = normalise_phone(text)
        if phone:
            draft.phone = phone
        elif draft.kind == "report" and text in ANONYMOUS_WORDS:
            draft.anonymous = True
        elif draft.kind == "consult" and len(text) >= 6 and not re.search(r"\d{5}", text):
            # Not a number but more words: the question goes on (it may turn into a complaint).
            draft.facts = f"{draft.facts}\n{text}"
            extract(draft, text)
            _assess(draft, hooks)
        else:
            draft.error = "手机号码格式不对，需要11位数字，例如13800001234。"
    elif state == "photos":
        if text in DONE_WORDS:
            draft.photos_closed = True
        else:
            draft.error = "请发送图片，或回复“完成”继续。"
    elif state == "confirm":
        if text in CONFIRM_WORDS and _trigger(draft, "submit"):
            return IntakeReply("", submitted=True)
        return IntakeReply(f"请回复“确认”提交{KIND_NAMES.get(draft.kind, '投诉')}，或回复“取消”放弃。\n\n"
                           + summary(draft))

    if not draft.error:
        _advance(draft)
    return IntakeReply(prompt(draft))


def answer_photo(draft: IntakeDraft, media_id: str) -> IntakeReply:
    """An image arrived during intake: keep it as evidence whatever the question was."""
    if media_id and media_id not in draft.photos:
        draft.photos.append(media_id)
    if draft.state == "photos":
        return IntakeReply(f"已收到第{len(draft.photos)}张图片。可以继续发送，发完请回复“完成”。")
    return IntakeReply(f"已收到图片（共{len(draft.photos)}张）。\n" + prompt(draft))


def answer_location(draft: IntakeDraft, label: str, hooks: Hooks | None = None) -> IntakeReply:
    """A WeChat location message during intake: it tells where the merchant is."""
    label = (label or "").strip()
    if draft.kind == "consult" or not label:
        return IntakeReply("已收到位置。\n" + prompt(draft))
    if hooks is not None:
        hooks.place_answer(draft, label, location=True)
    else:
        draft.place_name, draft.place_kind, draft.place_done = label[:60], "unknown", True
    draft.error = ""
    if draft.state == "place":
        _advance(draft)
    return IntakeReply(f"已收到位置：{label[:60]}\n" + prompt(draft))


def prompt(draft: IntakeDraft) -> str:
    prefix = draft.error + "\n" if draft.error else ""
    if draft.state == "confirm":
        return prefix + summary(draft) + "\n\n回复“确认”提交，回复“取消”放弃。"
    if draft.state == "place":
        if draft.place_hint:
            return prefix + PLACE_HINT_PROMPT.format(hint=draft.place_hint)
        if draft.place_mode == "check":
            return prefix + PLACE_CHECK_PROMPT
    return prefix + (KIND_PROMPTS.get(draft.kind, {}).get(draft.state) or PROMPTS.get(draft.state, ""))


def summary(draft: IntakeDraft) -> str:
    facts = draft.facts if len(draft.facts) <= 120 else draft.facts[:118] + "……"
    if draft.kind == "consult":
        return f"请核对您的咨询：\n【问题】{facts}\n【电话】{draft.phone}"
    if draft.kind == "report":
        return (
            "请核对您的举报：\n"
            f"【情况】{facts}\n"
            f"【被举报商家】{draft.merchant}\n"
            + (f"【地点】{draft.place_name}\n" if draft.place_name else "")
            + f"【电话】{'匿名' if draft.anonymous and not draft.phone else draft.phone}\n"
            f"【证据】{len(draft.photos)}张图片"
        )
    head = "请核对您的投诉：\n" if draft.kind != "both" else "请核对您的投诉（其中的违法线索将另作举报处理）：\n"
    return (
        head
        + f"【经过】{facts}\n"
        f"【商家】{draft.merchant}\n"
        + (f"【地点】{draft.place_name}\n" if draft.place_name else "")
        + f"【诉求】{draft.demand}\n"
        f"【电话】{draft.phone}\n"
        f"【证据】{len(draft.photos)}张图片"
    )

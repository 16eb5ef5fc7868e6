"""Intake: collect what a complaint needs, asking only for what is still missing.

A complaint needs (投诉登记表 式样一, DOMAIN.md §1.2): the facts, the merchant's name and
where it is, what the consumer asks for, a contact mobile number and optional evidence photos.
The consumer's first message usually carries some of these already; ``extract`` picks them
up, and the ``advance`` trigger below jumps to the first slot still empty.

    facts ─┐
    merchant ─┤ advance (first missing slot wins, in table order)
    demand ───┤──────────────────────────────► confirm ──submit──► submitted
    phone ────┤
    photos ───┘                any asking state ──cancel──► cancelled

Pure: no Flask, no Redis. The handler loads an ``IntakeDraft`` from storage, calls
``answer`` and saves ``draft.to_dict()`` back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from transitions import Machine, MachineError

ASKING = ["facts", "merchant", "demand", "phone", "photos", "confirm"]
STATES = ASKING + ["submitted", "cancelled"]

# Order matters: transitions tries rows with the same trigger and source top to bottom and
# takes the first whose conditions hold, so this table *is* the question order.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "advance", "source": ASKING, "dest": "facts", "unless": "has_facts"},
    {"trigger": "advance", "source": ASKING, "dest": "merchant", "unless": "has_merchant"},
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
    "demand": "您希望商家怎么解决？例如：退款、退货、换货、维修、赔偿、道歉。",
    "phone": "请留一个能联系到您的11位手机号码。",
    "photos": "如有小票、订单截图、商品照片等证据，请直接发送图片；没有或发完了请回复“完成”。",
}

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
# "我在华联超市买的" → drop the "我在" that the greedy name pattern swallowed.
MERCHANT_LEAD = re.compile(r"^(?:我们|我|本人|昨天|今天|前天|上周|刚才|刚刚)?(?:在|去|到|从|于|跟|和)?")


@dataclass(eq=False)  # identity equality: a shared Machine must never confuse two drafts
class IntakeDraft:
    state: str = "facts"
    facts: str = ""
    merchant: str = ""
    demand: str = ""
    phone: str = ""
    photos: list[str] = field(default_factory=list)
    photos_closed: bool = False
    error: str = ""  # why the last answer was not accepted, shown before the question

    # --- conditions named in TRANSITIONS -------------------------------------------------
    def has_facts(self) -> bool:
        return bool(self.facts)

    def has_merchant(self) -> bool:
        return bool(self.merchant)

    def has_demand(self) -> bool:
        return bool(self.demand)

    def has_phone(self) -> bool:
        return bool(self.phone)

    def photos_done(self) -> bool:
        return self.photos_closed

    def is_complete(self) -> bool:
        return all((self.facts, self.merchant, self.demand, self.phone))

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
        for match in MERCHANT_RE.finditer(text):
            name = MERCHANT_LEAD.sub("", match.group(1))
            if not MERCHANT_STOP.match(name) and len(name) >= 3:
                draft.merchant = name
                break


def start(text: str) -> IntakeDraft:
    """A new draft from the consumer's first message (may be empty: they only said 投诉)."""
    draft = IntakeDraft()
    text = (text or "").strip()
    if text:
        draft.facts = text
        extract(draft, text)
    _advance(draft)
    return draft


def _advance(draft: IntakeDraft) -> None:
    _trigger(draft, "advance")


def _trigger(draft: IntakeDraft, name: str) -> bool:
    # Shared machine, no add_model: all conditions are named in TRANSITIONS (STYLE.md "C1").
    try:
        return bool(MACHINE.events[name].trigger(draft))
    except MachineError:
        return False


def answer_text(draft: IntakeDraft, text: str) -> IntakeReply:
    """The consumer answered the current question with text."""
    text = (text or "").strip()
    if text in CANCEL_WORDS:
        _trigger(draft, "cancel")
        return IntakeReply("已取消本次投诉。需要时随时发消息给我即可重新开始。", cancelled=True)

    state = draft.state
    draft.error = ""
    if state == "facts":
        if len(text) < 4:
            draft.error = "描述太短了，请多说几句。"
        else:
            draft.facts = text
            extract(draft, text)
    elif state == "merchant":
        if len(text) < 2:
            draft.error = "请写出商家的名称。"
        else:
            draft.merchant = text
    elif state == "demand":
        draft.demand = text
    elif state == "phone":
        phone = normalise_phone(text)
        if phone:
            draft.phone = phone
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
        return IntakeReply("请回复“确认”提交投诉，或回复“取消”放弃。\n\n" + summary(draft))

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


def prompt(draft: IntakeDraft) -> str:
    prefix = draft.error + "\n" if draft.error else ""
    if draft.state == "confirm":
        return prefix + summary(draft) + "\n\n回复“确认”提交，回复“取消”放弃。"
    return prefix + PROMPTS.get(draft.state, "")


def summary(draft: IntakeDraft) -> str:
    facts = draft.facts if len(draft.facts) <= 120 else draft.facts[:118] + "……"
    return (
        "请核对您的投诉：\n"
        f"【经过】{facts}\n"
        f"【商家】{draft.merchant}\n"
        f"【诉求】{draft.demand}\n"
        f"【电话】{draft.phone}\n"
        f"【证据】{len(draft.photos)}张图片"
    )

"""Merchants who settle first: ODR enterprises and liaison stations (商场、4S店、连锁), issue 5.

Each has a name, short names (aliases), a kind and one contact person, who binds their WeChat with
a one-time code (``绑定 <code>``, like staff). ``match`` finds the registered merchant a complaint
names, tolerant of short names and common suffixes (有限公司/店/超市…). Redis only.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import redis

from bot import defaults
from storage.keys import Keys

KINDS = {"odr": "ODR企业", "station": "消费维权联络站"}
SUFFIXES = ("股份有限公司", "有限责任公司", "有限公司", "公司", "集团", "旗舰店", "专卖店", "连锁", "分店",
            "超市", "商场", "商店", "门店", "店")
PLACE_PREFIX = re.compile(r"^(?:山东省?|淄博市?|临淄区?)+")
NOISE = re.compile(r"[\s（）()·\-—_,，。]")


def core_name(name: str) -> str:
    """华联超市临淄店 → 华联; 淄博银座商城有限公司 → 银座商城: what staff and consumers call it."""
    text = NOISE.sub("", name or "")
    text = PLACE_PREFIX.sub("", text)
    for _ in range(3):
        for suffix in SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix) + 1:
                text = text[: -len(suffix)]
                break
        text = re.sub(r"(临淄|[\u4e00-\u9fff]{2}路)$", "", text) if len(text) > 4 else text
    return text


@dataclass
class Merchant:
    id: str
    name: str
    kind: str = "station"
    aliases: list[str] = field(default_factory=list)
    contact: str = ""  # the contact person's name
    phone: str = ""
    openid: str = ""  # the contact's WeChat, once bound
    bind_code: str = ""
    created_at: float = 0.0

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, self.kind)

    def names(self) -> list[str]:
        return [n for n in {core_name(self.name), *(core_name(a) for a in self.aliases)} if len(n) >= 2]


class MerchantStore:
    def __init__(self, r: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time):
        self.r = r
        self.keys = keys
        self.clock = clock

    def add(self, name: str, kind: str = "station", aliases: list[str] | None = None, contact: str = "",
            phone: str = "") -> tuple[Merchant, str]:
        name = (name or "").strip()
        if not name:
            raise ValueError("商家名称不能为空。")
        if any(m.name == name for m in self.all()):  # names are how staff and the CLI find them
            raise ValueError(f"商家“{name}”已登记。")
        if kind not in KINDS:
            raise ValueError(f"未知类型 {kind}；可选：{'、'.join(f'{k}（{v}）' for k, v in KINDS.items())}。")
        merchant_id = f"M{self.r.incr(self.keys.merchant_seq()):03d}"
        record = Merchant(id=merchant_id, name=name, kind=kind, aliases=[a for a in aliases or [] if a],
                          contact=contact, phone=phone, created_at=self.clock())
        pipe = self.r.pipeline()
        pipe.hset(self.keys.merchant(merchant_id), mapping=_fields(record))
        pipe.zadd(self.keys.merchant_ids(), {merchant_id: record.created_at})
        pipe.execute()
        return record, self.issue_bind_code(merchant_id)

    def issue_bind_code(self, merchant_id: str, ttl: int = defaults.STAFF_BIND_TTL_SECONDS) -> str:
        for _ in range(20):
            code = f"{secrets.randbelow(90_000_000) + 10_000_000}"
            # Staff and merchant codes share one space of 8 digits: never hand out one that is live as a staff code.
            if self.r.exists(self.keys.staff_bind_code(code)):
                continue
            if self.r.set(self.keys.merchant_bind_code(code), merchant_id, nx=True, ex=ttl):
                self.r.hset(self.keys.merchant(merchant_id), "bind_code", code)
                return code
        raise RuntimeError("could not find a free binding code")

    def bind(self, code: str, openid: str) -> Merchant | None:
        """Consume a merchant contact's code; None when it is no merchant code."""
        code_key = self.keys.merchant_bind_code(code.strip())
        merchant_id = self.r.getdel(code_key)
        record = self.get(merchant_id) if merchant_id else None
        if record is None:
            return None
        pipe = self.r.pipeline()
        if record.openid and record.openid != openid:
            pipe.hdel(self.keys.merchant_by_openid(), record.openid)
        pipe.hset(self.keys.merchant(record.id), mapping={"openid": openid, "bind_code": ""})
        pipe.hset(self.keys.merchant_by_openid(), openid, record.id)
        pipe.execute()
        record.openid = openid
        return record

    def get(self, merchant_id: str) -> Merchant | None:
        fields = self.r.hgetall(self.keys.merchant(merchant_id)) if merchant_id else {}
        if not fields:
            return None
        return Merchant(id=fields["id"], name=fields.get("name", ""), kind=fields.get("kind", "station"),
                        aliases=json.loads(fields.get("aliases") or "[]"), contact=fields.get("contact", ""),
                        phone=fields.get("phone", ""), openid=fields.get("openid", ""),
                        bind_code=fields.get("bind_code", ""), created_at=float(fields.get("created_at") or 0))

    def by_openid(self, openid: str) -> Merchant | None:
        return self.get(self.r.hget(self.keys.merchant_by_openid(), openid) or "") if openid else None

    def all(self) -> list[Merchant]:
        return [m for m in (self.get(i) for i in self.r.zrange(self.keys.merchant_ids(), 0, -1)) if m]

    def match(self, name: str) -> Merchant | None:
        """The registered merchant a complaint names, or None. A short name matches when one
        contains the other (华联 in 华联超市稷下店); with two candidates, the longer name wins."""
        wanted = core_name(name)
        if len(wanted) < 2:
            return None
        best, best_len = None, 0
        for merchant in self.all():
            for known in merchant.names():
                if (known in wanted or wanted in known) and len(known) > best_len:
                    best, best_len = merchant, len(known)
        return best


def _fields(record: Merchant) -> dict[str, str]:
    out = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, list) else str(v)) for k, v in asdict(record).items()}
    return out

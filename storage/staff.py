"""Staff in Redis: registration, WeChat binding, dashboard passwords and one-time login codes.

An administrator registers a person (``python -m bot staff add``) and hands them the one-time
binding code; the person sends ``绑定 <code>`` to the official account from their own WeChat,
which ties their openid to the record. From then on every message from that openid is staff
(``Directory.staff_for``). Nothing here knows WeChat or Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Callable

import redis

from bot import defaults
from flows.roles import ROLE_NAMES, ROLES
from storage.keys import Keys

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
"""scrypt cost (16 MiB, ~50 ms): slow enough against offline guessing, fast enough for a login."""

MIN_PASSWORD_CHARS = 8
MAX_NAME_CHARS = 32


@dataclass
class StaffRecord:
    id: str
    name: str
    unit: str
    role: str
    openid: str = ""
    created_at: float = 0.0

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "StaffRecord":
        return cls(id=fields.get("id", ""), name=fields.get("name", ""), unit=fields.get("unit", ""),
                   role=fields.get("role", ""), openid=fields.get("openid", ""),
                   created_at=float(fields.get("created_at") or 0))


class StaffStore:
    def __init__(self, r: redis.Redis, keys: Keys, clock: Callable[[], float] = time.time):
        self.r = r
        self.keys = keys
        self.clock = clock

    # --- registration ------------------------------------------------------------------------
    def add(self, name: str, unit: str, role: str) -> tuple[StaffRecord, str]:
        """Register a person; returns the record and their one-time binding code.

        Raises ValueError (a Chinese sentence) for an empty or taken name or an unknown role.
        Units are checked by the caller, which has the configuration.
        """
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME_CHARS or any(ch.isspace() for ch in name):
            raise ValueError(f"姓名不能为空、不能含空格，最长{MAX_NAME_CHARS}个字。")
        if role not in ROLES:
            raise ValueError(f"未知角色 {role}；可选：{'、'.join(f'{r}（{ROLE_NAMES[r]}）' for r in ROLES)}。")
        staff_id = f"S{self.r.incr(self.keys.staff_seq()):03d}"
        # The name index is claimed first: two admins adding the same name at once get one record.
        if not self.r.hsetnx(self.keys.staff_by_name(), name, staff_id):
            raise ValueError(f"已有名为“{name}”的工作人员；重名请加区分，如“{name}2”。")
        record = StaffRecord(id=staff_id, name=name, unit=unit, role=role, created_at=self.clock())
        pipe = self.r.pipeline()
        pipe.hset(self.keys.staff(staff_id), mapping={k: str(v) for k, v in asdict(record).items()})
        pipe.zadd(self.keys.staff_ids(), {staff_id: record.created_at})
        pipe.execute()
        return record, self.issue_bind_code(staff_id)

    def issue_bind_code(self, staff_id: str, ttl: int = defaults.STAFF_BIND_TTL_SECONDS) -> str:
        """A fresh one-time binding code; an earlier unused one stops working."""
        key = self.keys.staff(staff_id)
        old = self.r.hget(key, "bind_code")
        for _ in range(20):
            code = f"{secrets.randbelow(90_000_000) + 10_000_000}"
            if self.r.set(self.keys.staff_bind_code(code), staff_id, nx=True, ex=ttl):
                pipe = self.r.pipeline()
                if old:
                    pipe.delete(self.keys.staff_bind_code(old))
                pipe.hset(key, "bind_code", code)
                pipe.execute()
                return code
        raise RuntimeError("could not find a free binding code")

    def bind(self, code: str, openid: str) -> StaffRecord | None:
        """Consume a binding code and tie ``openid`` to its staff record.

        None when the code is unknown, used or expired, or when this openid already belongs to
        another staff member (the code then stays valid). A wrong code counts towards
        ``bind_locked``. Re-binding a record (``staff rebind``) moves it to the new openid.
        """
        code_key = self.keys.staff_bind_code(code.strip())
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(code_key)
                staff_id = pipe.get(code_key)
                record = self.get(staff_id) if staff_id else None
                owner = self.r.hget(self.keys.staff_by_openid(), openid)
                if record is None or (owner and owner != record.id):
                    pipe.unwatch()
                    if record is None:
                        self._note_bind_failure(openid)
                    return None
                pipe.multi()
                pipe.delete(code_key)
                if record.openid and record.openid != openid:
                    pipe.hdel(self.keys.staff_by_openid(), record.openid)
                pipe.hset(self.keys.staff(record.id), mapping={"openid": openid, "bind_code": ""})
                pipe.hset(self.keys.staff_by_openid(), openid, record.id)
                pipe.execute()
            except redis.WatchError:
                return None  # someone used the same code a moment earlier
        record.openid = openid
        return record

    def bind_locked(self, openid: str) -> bool:
        """Too many wrong binding codes from this openid lately."""
        failures = self.r.get(self.keys.staff_bind_failures(openid))
        return int(failures or 0) >= defaults.STAFF_BIND_MAX_FAILURES

    def _note_bind_failure(self, openid: str) -> None:
        key = self.keys.staff_bind_failures(openid)
        pipe = self.r.pipeline()
        pipe.set(key, 0, nx=True, ex=defaults.STAFF_BIND_FAILURE_WINDOW_SECONDS)  # the TTL is set once
        pipe.incr(key)
        pipe.execute()

    # --- lookups -----------------------------------------------------------------------------
    def get(self, staff_id: str) -> StaffRecord | None:
        if not staff_id:
            return None
        fields = self.r.hgetall(self.keys.staff(staff_id))
        return StaffRecord.from_fields(fields) if fields.get("id") else None

    def by_openid(self, openid: str) -> StaffRecord | None:
        staff_id = self.r.hget(self.keys.staff_by_openid(), openid) if openid else None
        return self.get(staff_id) if staff_id else None

    def by_name(self, name: str) -> StaffRecord | None:
        staff_id = self.r.hget(self.keys.staff_by_name(), (name or "").strip()) if name else None
        return self.get(staff_id) if staff_id else None

    def find(self, id_or_name: str) -> StaffRecord | None:
        """The CLI's lookup: a staff id (S001, s1) or a name."""
        text = (id_or_name or "").strip()
        if text[:1] in "Ss" and text[1:].isdigit():
            record = self.get(f"S{int(text[1:]):03d}")
            if record:
                return record
        return self.by_name(text)

    def all(self) -> list[StaffRecord]:
        ids = self.r.zrange(self.keys.staff_ids(), 0, -1)
        pipe = self.r.pipeline(transaction=False)
        for staff_id in ids:
            pipe.hgetall(self.keys.staff(staff_id))
        return [StaffRecord.from_fields(f) for f in pipe.execute() if f.get("id")]

    def pending_bind_code(self, staff_id: str) -> str:
        """The unused binding code of a record, if it is still valid ("" otherwise)."""
        code = self.r.hget(self.keys.staff(staff_id), "bind_code") or ""
        return code if code and self.r.exists(self.keys.staff_bind_code(code)) else ""

    def remove(self, staff_id: str) -> bool:
        record = self.get(staff_id)
        if record is None:
            return False
        bind_code = self.r.hget(self.keys.staff(staff_id), "bind_code")
        pipe = self.r.pipeline()
        pipe.delete(self.keys.staff(staff_id), self.keys.staff_login_code(staff_id))
        pipe.zrem(self.keys.staff_ids(), staff_id)
        pipe.hdel(self.keys.staff_by_name(), record.name)
        if record.openid:
            pipe.hdel(self.keys.staff_by_openid(), record.openid)
        if bind_code:
            pipe.delete(self.keys.staff_bind_code(bind_code))
        pipe.execute()
        return True

    # --- dashboard login ---------------------------------------------------------------------
    def set_password(self, staff_id: str, password: str) -> None:
        if self.get(staff_id) is None:
            raise ValueError(f"没有工作人员 {staff_id}。")
        if len(password or "") < MIN_PASSWORD_CHARS:
            raise ValueError(f"密码至少{MIN_PASSWORD_CHARS}个字符。")
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        stored = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"
        self.r.hset(self.keys.staff(staff_id), "password", stored)

    def check_password(self, name: str, password: str) -> StaffRecord | None:
        record = self.by_name(name)
        if record is None or not password:
            return None
        stored = self.r.hget(self.keys.staff(record.id), "password") or ""
        try:
            scheme, n, r, p, salt, digest = stored.split("$")
            if scheme != "scrypt":
                return None
            candidate = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
        except ValueError:  # no password set, or a damaged value: nobody gets in with it
            return None
        return record if hmac.compare_digest(candidate, bytes.fromhex(digest)) else None

    def issue_login_code(self, staff_id: str, ttl: int = defaults.STAFF_LOGIN_CODE_TTL_SECONDS) -> str:
        """A 6-digit one-time dashboard login code; issuing another replaces it."""
        if self.get(staff_id) is None:
            raise ValueError(f"没有工作人员 {staff_id}。")
        code = f"{secrets.randbelow(1_000_000):06d}"
        self.r.set(self.keys.staff_login_code(staff_id), code, ex=ttl)
        return code

    def use_login_code(self, name: str, code: str) -> StaffRecord | None:
        """The record when ``code`` is this person's current login code, which is then used up.
        A wrong code leaves the real one valid (the dashboard counts failures per name)."""
        record = self.by_name(name)
        if record is None or not code:
            return None
        key = self.keys.staff_login_code(record.id)
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(key)
                stored = pipe.get(key)
                if not stored or not hmac.compare_digest(stored.encode(), code.strip().encode()):
                    pipe.unwatch()
                    return None
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                return None  # used by a concurrent login: once means once
        return record


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)

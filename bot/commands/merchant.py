"""Merchants who settle first (issue 5): ``python -m bot merchant add | list | import CSV``.

Each registered merchant (ODR enterprise or liaison station: 商场、4S店、连锁) has one contact
person, who binds their WeChat by sending the printed code (``绑定 <code>``) to the account.
"""

from __future__ import annotations

import argparse
import csv

from bot.config import load_config
from storage.merchants import KINDS, MerchantStore


def register(sub, common: argparse.ArgumentParser) -> None:
    merchant = sub.add_parser("merchant", help="merchants who settle first: add | list | import CSV")
    actions = merchant.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", parents=[common], help="register a merchant; prints its contact's binding code")
    add.add_argument("--name", required=True, help="registered name, e.g. 淄博华联超市有限公司临淄店")
    add.add_argument("--kind", default="station", help="odr (ODR企业) | station (消费维权联络站: 商场、4S店、连锁)")
    add.add_argument("--alias", action="append", default=[], help="a short name consumers use (repeatable)")
    add.add_argument("--contact", default="", help="the contact person's name")
    add.add_argument("--phone", default="")
    actions.add_parser("list", parents=[common], help="every merchant: id, name, kind, contact, bound or not")
    imp = actions.add_parser("import", parents=[common], help="CSV with columns name,kind,aliases,contact,phone "
                                                              "(aliases separated by |); prints each binding code")
    imp.add_argument("csv")
    merchant.set_defaults(func=merchant_command)


def _store(config) -> MerchantStore:
    from storage.connection import connect
    from storage.keys import Keys
    from bot.config import data_dir

    handle = connect(config["redis"]["url"], data_dir(config))
    return MerchantStore(handle.data, Keys(config["redis"].get("namespace") or "med"))


def merchant_command(args: argparse.Namespace) -> int:
    store = _store(load_config(args.config))
    if args.action == "list":
        for m in store.all():
            bound = "已绑定" if m.openid else f"待绑定（绑定码 {m.bind_code}）"
            print(f"{m.id}  {m.name}  {m.kind_name}  简称：{'、'.join(m.aliases) or '无'}  联系人：{m.contact or '未填'}  {bound}")
        return 0
    rows = ([{"name": args.name, "kind": args.kind, "aliases": "|".join(args.alias), "contact": args.contact,
              "phone": args.phone}] if args.action == "add" else _read(args.csv))
    failed = 0
    for row in rows:
        try:
            record, code = store.add(row["name"], (row.get("kind") or "station").strip(),
                                     [a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()],
                                     (row.get("contact") or "").strip(), (row.get("phone") or "").strip())
        except ValueError as exc:
            print(f"skipped {row.get('name')!r}: {exc}")
            failed += 1
            continue
        print(f"added {record.id} {record.name} ({record.kind_name})")
        print(f"  binding code: {code}      ← the contact sends “绑定 {code}” to the account")
    return 1 if failed else 0


def _read(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "name" not in reader.fieldnames:
            raise SystemExit(f"{path}: needs a `name` column (and optionally kind, aliases, contact, phone)")
        return list(reader)


__all__ = ["register", "KINDS"]

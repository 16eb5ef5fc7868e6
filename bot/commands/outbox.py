"""``python -m bot outbox``: what could not be delivered (dead letters), replay, status."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from bot.config import load_config


def register(sub, common: argparse.ArgumentParser) -> None:
    outbox = sub.add_parser("outbox", help="see and replay what could not be delivered (dead letters)")
    actions = outbox.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="every dead letter, oldest first, with its reason")
    replay = actions.add_parser("replay", parents=[common], help="queue dead letters again")
    replay.add_argument("id", nargs="?", help="the dead letter's id (from `list`)")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    drop = actions.add_parser("drop", parents=[common], help="forget one dead letter")
    drop.add_argument("id")
    actions.add_parser("status", parents=[common], help="queue, pending messages, dead letters and alarms (48001)")
    outbox.set_defaults(func=outbox_command)


def outbox_command(args: argparse.Namespace) -> int:
    """Staff's view of what did not go out: dead letters (list, replay, drop) and a status."""
    from bot.config import data_dir
    from bot.outbound import DeliverySettings, Outbound, make_queue
    from storage.connection import connect
    from storage.keys import Keys
    from storage.outbox import Outbox

    config = load_config(args.config)
    handle = connect(config["redis"]["url"], data_dir(config))
    try:
        keys = Keys(config["redis"].get("namespace") or "med")
        outbound = Outbound(make_queue(handle.raw, keys.outbound_queue()), Outbox(handle.data, keys),
                            DeliverySettings.from_config(config))
        if args.action == "list":
            return _print_dead_letters(outbound.outbox.dead_letters())
        if args.action == "replay":
            if bool(args.id) == bool(args.all):
                print("outbox replay: give one dead letter id or --all", file=sys.stderr)
                return 2
            replayed = outbound.replay(None if args.all else [args.id])
            if args.id and not replayed:
                print(f"outbox replay: no dead letter {args.id}", file=sys.stderr)
                return 1
            print(f"replayed {len(replayed)}: {' '.join(replayed)}" if replayed else "nothing to replay")
            return 0
        if args.action == "drop":
            if not outbound.drop(args.id):
                print(f"outbox drop: no dead letter {args.id}", file=sys.stderr)
                return 1
            print(f"dropped {args.id}")
            return 0
        return _print_status(outbound.status())
    finally:
        handle.close()


def _when(timestamp: float | None) -> str:
    from storage.store import CHINA

    return datetime.fromtimestamp(float(timestamp), CHINA).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def _print_dead_letters(records: list[dict]) -> int:
    if not records:
        print("no dead letters")
        return 0
    for rec in records:
        if rec.get("type") == "media":
            what = f"media    {rec.get('kind', '')} {rec.get('media_id', '')} from {rec.get('openid', '')}"
        else:
            text = (rec.get("text") or "").replace("\n", " ")
            what = (f"message  {rec.get('kind', '')} → {rec.get('to', '')}"
                    + (f" ({rec['ticket']})" if rec.get("ticket") else "")
                    + f": {text[:40]}{'…' if len(text) > 40 else ''}")
        print(f"{rec['id']}  {_when(rec.get('dead_at'))}  {what}\n    reason: {rec.get('reason', '?')}")
    print(f"{len(records)} dead letters; `python -m bot outbox replay ID|--all` sends them again")
    return 0


def _print_status(status: dict) -> int:
    for api, alarm in sorted(status["alarms"].items()):
        print(f"ALARM   {api}: {alarm.get('errcode')} {alarm.get('errmsg', '')} since {_when(alarm.get('at'))} "
              "- the account lacks this API permission; fix it, then `outbox replay --all`")
    print(f"queue   {status['queued']} queued, {status['running']} running, "
          f"{status['retry_scheduled']} waiting to retry, {status['failed_jobs']} failed jobs")
    print(f"pending {status['pending_messages']} messages for {status['pending_people']} people "
          "(sent with each person's next message to the account)")
    for openid, count in sorted(status["pending"].items(), key=lambda item: -item[1])[:20]:
        print(f"        {openid}: {count}")
    print(f"dead    {status['dead_letters']} dead letters (`python -m bot outbox list`)")
    return 0

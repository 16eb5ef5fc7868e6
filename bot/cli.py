"""Command line: ``python -m bot <command>``.

    demo     the whole main job on an embedded Redis, a local WeChat API stand-in and real HTTP
    serve    the webhook under gunicorn (create_app, preloaded: jieba loads once for all workers)
    worker   the outbound delivery worker (RQ)
    outbox   what could not be delivered: list | replay [ID|--all] | drop ID | status
    standin  the local WeChat API stand-in in the foreground
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime

from bot.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="不见面调解 WeChat bot")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the main job end to end on local parts")
    demo.add_argument("--complaints", help="CSV with a `text` column (default: samples/complaints.csv)")
    demo.add_argument("--limit", type=int, default=0, help="only the first N complaints")
    demo.add_argument("--verbose", action="store_true", help="print every conversation, not only the first")
    demo.add_argument("--data-dir", help="where the embedded Redis keeps its files (default: a temp folder)")
    demo.add_argument("--safe-mode", action="store_true", help="encrypt every push (AES safe mode)")

    serve = sub.add_parser("serve", help="run the webhook under gunicorn")
    serve.add_argument("--config", help="YAML config (default: $BOT_CONFIG)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=2)

    worker = sub.add_parser("worker", help="run the outbound delivery worker")
    worker.add_argument("--config", help="YAML config (default: $BOT_CONFIG)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")

    outbox = sub.add_parser("outbox", help="see and replay what could not be delivered (dead letters)")
    config_arg = argparse.ArgumentParser(add_help=False)
    config_arg.add_argument("--config", help="YAML config (default: $BOT_CONFIG)")
    actions = outbox.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[config_arg], help="every dead letter, oldest first, with its reason")
    replay = actions.add_parser("replay", parents=[config_arg], help="queue dead letters again")
    replay.add_argument("id", nargs="?", help="the dead letter's id (from `list`)")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    drop = actions.add_parser("drop", parents=[config_arg], help="forget one dead letter")
    drop.add_argument("id")
    actions.add_parser("status", parents=[config_arg],
                       help="queue, pending messages, dead letters and alarms (48001)")

    standin = sub.add_parser("standin", help="serve the local WeChat API stand-in")
    standin.add_argument("--port", type=int, default=8081)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            from bot.demo import run_demo

            return run_demo(args.complaints, limit=args.limit, verbose=args.verbose, data_dir=args.data_dir,
                            safe_mode=args.safe_mode)
        if args.command == "serve":
            return serve_command(args)
        if args.command == "worker":
            return worker_command(args)
        if args.command == "outbox":
            return outbox_command(args)
        if args.command == "standin":
            from bot.standin import main as standin_main

            return standin_main(["--port", str(args.port)]) or 0
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    config = load_config(args.config)

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("preload_app", True)  # jieba's dictionary is loaded once, shared by fork
            self.cfg.set("timeout", 30)

        def load(self):
            from bot.app import create_app

            return create_app(config)

    Server().run()
    return 0


def worker_command(args: argparse.Namespace) -> int:
    from rq import SimpleWorker

    from bot.app import build_services
    from bot.outbound import init_worker
    from bot.wechat_client import BureauWeChatClient

    config = load_config(args.config)
    services = build_services(config)
    wechat = config["wechat"]
    client = BureauWeChatClient(wechat["appid"], wechat["secret"], services.redis.data, services.keys,
                                wechat["api_base_url"], timeout=float(wechat["timeout"]))
    queue = services.outbound.queue
    init_worker(client, store=services.store, outbox=services.outbound.outbox, queue=queue, config=config,
                clock=services.clock)
    # SimpleWorker: no fork per job; a send is one short HTTP call, forking would cost more.
    # The scheduler runs the retries that wait (delivery.retry_intervals).
    worker = SimpleWorker([queue], connection=services.redis.raw, serializer=queue.serializer)
    worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level.upper())
    return 0


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

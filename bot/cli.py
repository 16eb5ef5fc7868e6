"""Command line: ``python -m bot <command>``.

    demo     the whole main job on an embedded Redis, a local WeChat API stand-in and real HTTP
    serve    the webhook under gunicorn (create_app, preloaded: jieba loads once for all workers)
    worker   the outbound delivery worker (RQ)
    standin  the local WeChat API stand-in in the foreground
"""

from __future__ import annotations

import argparse
import logging
import sys

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
    init_worker(BureauWeChatClient(wechat["appid"], wechat["secret"], services.redis.data, services.keys,
                                   wechat["api_base_url"], timeout=float(wechat["timeout"])))
    queue = services.outbound.queue
    # SimpleWorker: no fork per job; a send is one short HTTP call, forking would cost more.
    worker = SimpleWorker([queue], connection=services.redis.raw, serializer=queue.serializer)
    worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level.upper())
    return 0

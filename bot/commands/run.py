"""Running the service: demo, serve (gunicorn), worker (RQ), standin."""

from __future__ import annotations

import argparse

from bot.commands import count, port
from bot.config import load_config


def register(sub, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser("demo", help="run the main job end to end on local parts")
    demo.add_argument("--complaints", help="CSV with a `text` column (default: samples/complaints.csv)")
    demo.add_argument("--limit", type=count, default=0, help="only the first N complaints")
    demo.add_argument("--verbose", action="store_true", help="print every conversation, not only the first")
    demo.add_argument("--data-dir", help="where the embedded Redis keeps its files (default: a temp folder)")
    demo.add_argument("--safe-mode", action="store_true", help="encrypt every push (AES safe mode)")
    demo.set_defaults(func=demo_command)

    serve = sub.add_parser("serve", parents=[common], help="run the webhook under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port, default=8080)
    serve.add_argument("--workers", type=count, default=2)
    serve.set_defaults(func=serve_command)

    worker = sub.add_parser("worker", parents=[common], help="run the worker: outbound delivery and ticket clocks (RQ)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=worker_command)

    standin = sub.add_parser("standin", help="serve the local WeChat API stand-in")
    standin.add_argument("--port", type=port, default=8081)
    standin.add_argument("--appid", default="wxdemo", help="the appid it accepts (must match wechat.appid)")
    standin.add_argument("--secret", default="demosecret", help="the secret it accepts (must match wechat.secret)")
    standin.set_defaults(func=standin_command)


def demo_command(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(args.complaints, limit=args.limit, verbose=args.verbose, data_dir=args.data_dir,
                    safe_mode=args.safe_mode)


def standin_command(args: argparse.Namespace) -> int:
    from bot.standin import main as standin_main

    return standin_main(["--port", str(args.port), "--appid", args.appid, "--secret", args.secret]) or 0


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
    from bot.clocks import init_clocks
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
    init_clocks(services)  # clock jobs (bot.clocks.fire) reach the handlers through it
    # SimpleWorker: no fork per job; a send is one short HTTP call, forking would cost more.
    # The scheduler runs the retries that wait (delivery.retry_intervals) and releases the
    # ticket clocks when they are due; both queues use the JSON serializer.
    worker = SimpleWorker([services.clocks.queue, queue], connection=services.redis.raw, serializer=queue.serializer)
    worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level.upper())
    return 0

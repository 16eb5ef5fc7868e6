"""Command line: ``python -m bot <command>``.

    demo     the whole main job on an embedded Redis, a local WeChat API stand-in and real HTTP
    serve    the webhook under gunicorn (create_app, preloaded: jieba loads once for all workers)
    worker   the outbound delivery worker (RQ)
    outbox   what could not be delivered: list | replay [ID|--all] | drop ID | status
    staff    staff: add | list | remove | rebind | password | login-code
    merchant merchants who settle first (ODR / liaison stations): add | list | import CSV
    triage   how the first message is routed: explain TEXT | eval CSV [--map FILE]
    standin  the local WeChat API stand-in in the foreground

Each area's subcommands live in bot/commands/<area>.py; add a module to COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bot.commands import merchant, outbox, run, staff, triage
from bot.config import ConfigError

COMMAND_MODULES = [run, outbox, staff, merchant, triage]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="不见面调解 WeChat bot")
    parser.add_argument("--log-level", default="WARNING", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], help="default: WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML config (default: $BOT_CONFIG)")
    for module in COMMAND_MODULES:
        module.register(sub, common)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing CSV, a port already taken: say so, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


"""Subcommands of ``python -m bot``, one module per area.

Each module has ``register(sub, common)``: it adds its parsers to the argparse sub-parsers
and sets ``func`` on each; ``common`` is a parent parser holding ``--config``. bot/cli.py
lists the modules explicitly (no registration by import side effect).
"""

import argparse


def port(text: str) -> int:
    """argparse type: a TCP port (0 picks a free one)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0-65535")
    return value


def count(text: str) -> int:
    """argparse type: zero or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or more")
    return value

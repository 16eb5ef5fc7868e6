"""Subcommands of ``python -m bot``, one module per area.

Each module has ``register(sub, common)``: it adds its parsers to the argparse sub-parsers
and sets ``func`` on each; ``common`` is a parent parser holding ``--config``. bot/cli.py
lists the modules explicitly (no registration by import side effect).
"""

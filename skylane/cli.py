"""`skylane`: the one composition root. Reads the settings, wires the parts, runs a command."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from . import commands
from .settings import Settings


def _setup_logging(level: str, fmt: str = "text") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if fmt == "json":
        from .logformat import JsonFormatter
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skylane", description=__doc__)
    p.add_argument("--log-level", default=os.environ.get("SKYLANE_LOG_LEVEL", "INFO"))
    p.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("SKYLANE_LOG_FORMAT", "text"),
                   help="json: one JSON object per line (SKYLANE_LOG_FORMAT)")
    sub = p.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"skylane: bad setting: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now
        return 130

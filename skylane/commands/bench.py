"""`skylane bench NAME [ARGS]`: run the benchmark module bench/NAME.py (its own --help lists ARGS)."""
from __future__ import annotations

import importlib
import pkgutil

import bench

from ..settings import Settings


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def cmd_bench(args, settings: Settings) -> int:
    module = importlib.import_module(f"bench.{args.name}")
    return module.main(args.args) or 0


def register(sub) -> None:
    s = sub.add_parser("bench", help="run a benchmark: " + ", ".join(available()))
    s.add_argument("name", choices=available())
    s.add_argument("args", nargs="...", help="arguments for the benchmark")
    s.set_defaults(func=cmd_bench)

"""`skylane record|replay`: raw MQTT traffic to a file and back."""
from __future__ import annotations

import logging

from ..settings import Settings
from . import stop_on_signals

log = logging.getLogger("skylane")


def cmd_record(args, settings: Settings) -> int:
    from replay.recorder import record
    filters = args.topic or None
    n = record(settings.mqtt_url, args.file, settings.mqtt_root, filters=filters, stop=stop_on_signals(),
               duration_s=args.duration)
    log.info("recorded %d messages to %s", n, args.file)
    return 0


def cmd_replay(args, settings: Settings) -> int:
    from replay.player import replay
    stop = stop_on_signals()
    total = 0
    while True:
        n = replay(args.file, settings.mqtt_url, rate=args.rate, root_from=args.from_root, root_to=args.to_root,
                   stop=stop)
        total += n
        if not args.loop or stop.is_set():
            break
    log.info("replayed %d messages from %s", total, args.file)
    return 0


def register(sub) -> None:
    s = sub.add_parser("record", help="record raw MQTT traffic to a file")
    s.add_argument("file")
    s.add_argument("--topic", action="append", help="topic filter (repeatable; default ROOT/#)")
    s.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl-C)")
    s.set_defaults(func=cmd_record)

    s = sub.add_parser("replay", help="publish a recording back into the broker")
    s.add_argument("file")
    s.add_argument("--rate", type=float, default=1.0, help="speed factor; 0 = as fast as possible")
    s.add_argument("--from-root", help="root to take from the recording (default: the one in its header)")
    s.add_argument("--to-root", help="publish under this root instead (keeps replays off live topics)")
    s.add_argument("--loop", action="store_true")
    s.set_defaults(func=cmd_replay)

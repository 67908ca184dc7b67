"""Topic sharding: every device belongs to one of SHARDS shards, every shard to one ingest worker.

Per-flight state (the airspace monitor's zones and alerts of a UAV, a sensor's silence watch) lives in the
memory of one worker, so all messages of one device must reach the same worker, in order. MQTT 5 shared
subscriptions alone cannot promise that on Mosquitto (it spreads a group's messages round-robin, message
by message), so devices that want to be spread over workers put their shard in the topic:

    {root}/shard/{s}/uav/{uav_id}/telemetry        s = shard_of(uav_id)  (likewise sensor/, device/)

and worker i of N subscribes the shards s with s % N == i (optionally in its own share group, see
Assignment). The unsharded contract topics ({root}/uav/{id}/telemetry, ...) stay valid: worker 0 takes
them all, so a device is still handled by one worker. A message whose shard is not its device's is a dead
letter (it would split that device's state over two workers). SHARDS is part of the device contract:
changing it moves devices between shards, so it is fixed (workers can be 1..SHARDS).
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol.topics import SHARDS, shard_of, sharded_topic  # noqa: F401  (the device contract's half)

GROUP_PREFIX = "skylane-ingest"
_FAMILIES = ("uav", "sensor", "device")


class ShardError(ValueError):
    """A sharded topic whose shard is not a number in range or not its device's; becomes a dead letter."""


@dataclass(frozen=True)
class Assignment:
    """Which shards (and whether the unsharded topics) one worker of a deployment takes.

    `shared` puts the filters in a share group (`$share/skylane-ingest-{worker}/...`), for brokers that keep
    shared subscriptions in persistent sessions (EMQX). Off by default: Mosquitto 2.0 does not restore shared
    subscriptions after a restart, so what devices publish before the ingester re-subscribes would be lost
    (tests/test_ingest_noloss.py restarts the broker); a worker's plain subscriptions of its own shards give
    the same one-worker-per-device assignment without that gap.
    """

    worker: int = 0
    workers: int = 1
    shards: int = SHARDS
    shared: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= self.shards:
            raise ValueError(f"workers must be 1..{self.shards}, got {self.workers}")
        if not 0 <= self.worker < self.workers:
            raise ValueError(f"worker index must be 0..{self.workers - 1}, got {self.worker}")

    @property
    def group(self) -> str:
        return f"{GROUP_PREFIX}-{self.worker}"

    def owned(self) -> list[int]:
        return [s for s in range(self.shards) if s % self.workers == self.worker]

    def takes_unsharded(self) -> bool:
        return self.worker == 0

    def _filters(self, root: str, shards, unsharded: bool, shared: bool) -> list[str]:
        share = f"$share/{self.group}/" if shared else ""
        if shards == "all":  # a single worker: one filter, which also brings malformed shard levels
            out = [f"{share}{root}/shard/#"]
        else:
            out = [f"{share}{root}/shard/{s}/#" for s in shards]
        if unsharded:
            out += [f"{share}{root}/{fam}/#" for fam in _FAMILIES]
        return out

    def filters(self, root: str) -> list[str]:
        """Device filters for this worker. `#` under the families also brings wrong topic shapes, which
        become dead letters instead of passing unseen (with several workers, a shard level that is not a
        number matches no worker's filter: the broker's ACL must refuse it, docs/scale-out.md)."""
        shards = "all" if self.workers == 1 else self.owned()
        return self._filters(root, shards, self.takes_unsharded(), self.shared)

    def foreign_filters(self, root: str) -> list[str]:
        """Filters a persistent session of this worker may hold from an earlier assignment or mode (they
        would bring other workers' devices, or every message twice): unsubscribed on connect."""
        every = [f for shared in (False, True) for shards in ("all", range(self.shards))
                 for f in self._filters(root, shards, True, shared)]
        every += [f"{root}/uav/+/telemetry", f"{root}/sensor/+/reading", f"{root}/device/+/status"]  # pre-shard
        mine = set(self.filters(root))
        return [f for f in every if f not in mine]


def unshard(root: str, topic: str, shards: int = SHARDS) -> str:
    """The contract topic of a possibly sharded one; raises ShardError when the shard is wrong."""
    prefix = root + "/shard/"
    if not topic.startswith(prefix):
        return topic
    shard, _, rest = topic[len(prefix):].partition("/")
    if not shard.isdigit() or not 0 <= int(shard) < shards:
        raise ShardError(f"bad topic: shard {shard[:20]!r} is not 0..{shards - 1}")
    parts = rest.split("/")
    if len(parts) >= 2 and parts[0] in _FAMILIES and shard_of(parts[1], shards) != int(shard):
        raise ShardError(f"bad topic: device {parts[1][:64]!r} belongs to shard {shard_of(parts[1], shards)}, "
                         f"not {shard}")
    return f"{root}/{rest}"

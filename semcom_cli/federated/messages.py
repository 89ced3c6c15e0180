"""What crosses between devices and the server: every message recorded by kind and size.

The server records each message it sends and each reply it gets (it sees every message of a
federated run, in either engine): which round and step, which device, which way, and the bytes of
each array and config entry, grouped by kind:

- ``symbols``   device → server: received channel symbols, channel gains, link SNRs;
- ``labels``    device → server: each picture's caption index (the loss needs it);
- ``gradients`` server → device: d loss / d received symbols;
- ``scores``    server → device, U-shaped: the label-free outputs the device's loss is computed from;
- ``score_gradients`` device → server, U-shaped: the device's gradient at them;
- ``weights``   both ways at the round's ends: the front's weights (the round's start, FedAvg's input);
- ``secagg``    both ways, with secure aggregation: SecAgg+'s keys, key shares and masked fronts;
- ``config``    both ways: round, step, settings, sample counts, losses.

``keep_payloads`` also keeps the raw bytes, so a test can search them for a device's pictures
and for any text it holds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["MessageLog", "KINDS", "array_kind"]

KINDS = ("symbols", "labels", "gradients", "scores", "score_gradients", "weights", "secagg", "config")
SECAGG_RECORD = "secaggplus_configs"  # Flower's SecAgg+ record (flwr.common.secure_aggregation)


def _raw(value) -> bytes | None:
    """The bytes a config value carries (SecAgg+'s keys and masked vectors), None for other values."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, list) and value and all(isinstance(v, bytes) for v in value):
        return b"".join(value)
    return None


def array_kind(record_name: str, array_name: str) -> str:
    """The kind an array belongs to, from its record's and its own name."""
    if record_name == "gradients":
        return "gradients"
    if record_name == "outputs":
        return "scores"
    if record_name == "output-gradients":
        return "score_gradients"
    if record_name == "symbols":
        return "labels" if array_name == "labels" else "symbols"
    return "weights"


@dataclass
class MessageLog:
    keep_payloads: bool = False
    entries: list[dict] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    payload_tags: list[dict] = field(default_factory=list)  # each payload's round, device, way, type and kind
    texts: list[str] = field(default_factory=list)

    def record(self, content, *, round_: int, node: int, direction: str, message_type: str) -> None:
        """Record one message's RecordDict ``content`` (``direction``: ``to_device`` or ``to_server``)."""
        sizes: dict[str, int] = defaultdict(int)
        tag = {"round": round_, "node": node, "direction": direction, "type": message_type}

        def keep(kind: str, raw: bytes) -> None:
            self.payloads.append(raw)
            self.payload_tags.append({**tag, "kind": kind})

        for record_name, record in content.array_records.items():
            for array_name, array in record.items():
                sizes[array_kind(record_name, array_name)] += len(array.data)
                if self.keep_payloads:
                    keep(array_kind(record_name, array_name), bytes(array.data))
        for records in (content.config_records, content.metric_records):
            for record_name, record in records.items():
                kind = "secagg" if record_name == SECAGG_RECORD else "config"
                for key, value in record.items():
                    raw = _raw(value)
                    sizes[kind] += len(key) + (len(raw) if raw is not None else len(str(value)))
                    if self.keep_payloads:
                        if raw is not None:
                            keep(kind, raw)
                        else:
                            self.texts.append(f"{key}={value}")
        self.entries.append({"round": round_, "node": node, "direction": direction, "type": message_type,
                             "bytes": dict(sizes)})

    def per_round_per_device(self) -> dict[str, float]:
        """Mean bytes per round per device, by kind and direction (``symbols``, ``labels``,
        ``gradients``, ``weights_down``, ``weights_up``, ``config``, ``total``)."""
        totals: dict[str, int] = defaultdict(int)
        pairs = {(e["round"], e["node"]) for e in self.entries}
        for e in self.entries:
            for kind, size in e["bytes"].items():
                key = f"weights_{'down' if e['direction'] == 'to_device' else 'up'}" if kind == "weights" else kind
                totals[key] += size
                totals["total"] += size
        n = max(len(pairs), 1)
        return {k: v / n for k, v in sorted(totals.items())}

    def summary(self) -> dict:
        return {"messages": len(self.entries), "bytes_per_round_per_device": self.per_round_per_device()}

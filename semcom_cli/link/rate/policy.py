"""The rate policy: the channel-use budget that reaches a target accuracy at the reported SNR.

A :class:`RateTable` holds accuracy measured once per checkpoint (``semcom rate-table``) on a
grid of SNRs × budgets, for the uniform allocation, the content-aware one (no question known) and
the importance-aware one (question known), and lives in the checkpoint manifest's ``metrics.rate_table``. ``auto``
reads it conservatively: the row of the highest tabulated SNR not above the reported one, and the
smallest budget whose measured accuracy reaches the target there; where none does, the budget that
measured best (the answer says the target was not reachable); below the table's lowest SNR, its
largest budget, with no promise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry

__all__ = ["RateTable", "RATE_METHODS", "DEFAULT_SNRS", "DEFAULT_BUDGETS"]

# how a packet's channel-use budget is shared over its tokens
RATE_METHODS: Registry[str] = Registry("rate method")
RATE_METHODS.register("uniform", "every token alike: no knowledge of the content")
RATE_METHODS.register("content", "by each token's share in what the packet says: the question-free default (push)")
RATE_METHODS.register("importance", "by each token's importance to the question known before sending (pull)")


@dataclass
class RateTable:
    task: str
    channel: str
    snrs: list[float]
    budgets: list[int]
    accuracy: dict[str, list[list[float | None]]]  # method → [snr][budget], None: not measured
    limit: int
    seed: int
    split: str = "train"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data, source: str = "the manifest's rate table") -> "RateTable":
        try:
            table = cls(**{k: v for k, v in data.items() if k != "checkpoint_hash"})  # the hash: a record
            ok = (len(table.snrs) > 0 and len(table.budgets) > 0
                  and all(isinstance(s, (int, float)) and math.isfinite(s) for s in table.snrs)
                  and all(isinstance(b, int) and b > 0 for b in table.budgets)
                  and all(len(rows) == len(table.snrs) and all(len(r) == len(table.budgets) for r in rows)
                          for rows in table.accuracy.values()))
        except (TypeError, AttributeError):
            ok = False
        if not ok:
            raise SemcomError(f"{source} is damaged (expected snrs, budgets and accuracy per method)")
        return table

    @classmethod
    def from_manifest(cls, manifest: dict, checkpoint: str) -> "RateTable":
        data = (manifest.get("metrics") or {}).get("rate_table")
        if data is None:
            raise SemcomError(f"checkpoint {checkpoint} has no rate table for --channel-uses auto; measure one "
                              f"with 'semcom rate-table -c CHECKPOINT'")
        return cls.from_json(data, f"checkpoint {checkpoint}'s rate table")

    def choose(self, snr_db: float, target: float, method: str) -> tuple[int, float | None, bool]:
        """(budget, its measured accuracy, whether it reaches ``target``) at the reported SNR."""
        if method == "content" and method not in self.accuracy and "uniform" in self.accuracy:
            method = "uniform"  # a table measured before the content column: the uniform one's budgets
        if method not in self.accuracy:
            raise SemcomError(f"the rate table has no '{method}' column (it has: {', '.join(self.accuracy)})")
        below = [i for i, s in enumerate(self.snrs) if s <= snr_db]
        if not below:  # beneath the table nothing was measured: spend the most it knows, promise nothing
            return max(self.budgets), None, False
        row = self.accuracy[method][max(below, key=lambda i: self.snrs[i])]
        measured = sorted((b, a) for b, a in zip(self.budgets, row) if a is not None)
        if not measured:
            raise SemcomError(f"the rate table measured nothing at {snr_db:g} dB for '{method}'")
        for budget, acc in measured:
            if acc >= target:
                return budget, acc, True
        best = max(measured, key=lambda ba: (ba[1], -ba[0]))
        return best[0], best[1], False


DEFAULT_SNRS = (-10.0, -8.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0)
DEFAULT_BUDGETS = (4, 8, 16, 32, 64, 128)

"""Measuring a checkpoint's rate table (:class:`semcom_cli.link.rate.RateTable`): accuracy per method,
SNR and channel-use budget, what ``--channel-uses auto`` reads from the manifest."""

from __future__ import annotations

from semcom_cli.evaluation.points import Point, Settings, evaluate_point
from semcom_cli.link.rate.policy import DEFAULT_BUDGETS, DEFAULT_SNRS, RATE_METHODS, RateTable

__all__ = ["measure_rate_table", "SATURATED"]

SATURATED = 0.995  # a row stops at the first budget measured at or above it: more cannot be told apart


def measure_rate_table(model, data, task: str = "vqa", channel: str = "awgn", snrs=DEFAULT_SNRS,
                       budgets=DEFAULT_BUDGETS, limit: int = 200, seed: int = 0, on_point=None) -> RateTable:
    """Accuracy of each of ``RATE_METHODS`` at every SNR × budget, on a seeded sample of ``data``
    (the easy-vqa *train* split by default: the test set stays for evaluation). Each row stops at the
    first budget that reaches ``SATURATED``; budgets past it are left unmeasured (None)."""
    settings = Settings(limit=limit, seed=seed)
    accuracy: dict[str, list[list[float | None]]] = {}
    for method in RATE_METHODS:
        rows = []
        for snr in snrs:
            row: list[float | None] = [None] * len(budgets)
            for j, budget in enumerate(sorted(budgets)):
                record = evaluate_point({"main": model}, data, Point(method, task, channel, float(snr), budget),
                                        settings)
                row[j] = record["metrics"]["accuracy"]["value"]
                if on_point:
                    on_point(method, snr, budget, row[j])
                if row[j] >= SATURATED:
                    break
            rows.append(row)
        accuracy[method] = rows
    return RateTable(task, channel, [float(s) for s in snrs], sorted(int(b) for b in budgets), accuracy, limit, seed,
                     data.split)

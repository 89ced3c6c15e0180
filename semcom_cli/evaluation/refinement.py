"""Whether the codec's symbols refine: ROI PSNR against the ROI's share of the uses and against the budget.

A codec that reads detail from its symbols brings the region of interest back better the more symbols
the region is given; one that learnt a prior for its scenes makes nearly the same picture from any
number. This measures it on test scenes with the true ROI box (the guide is not under test): one
sweep over ``roi_share`` at a fixed budget, one over the budget at a fixed share, both through the
link (side information included) at one SNR. A curve *refines* when every step up raises ROI PSNR
(by at least ``tolerance_db``: less is noise); the JSON says so per sweep, with the rise from the first
point to the last.

``benchmarks/reconstruct.py`` runs it on the shipped codec; the tests on a tiny trained one.
"""

from __future__ import annotations

from semcom_cli.evaluation.metrics import mean
from semcom_cli.evaluation.reconstruct import ReconstructItems, image_scores, reconstruct_point
from semcom_cli.io.patches import box_of_mask

__all__ = ["refinement", "curve_summary"]


def curve_summary(xs: list, roi_psnr: list[float], tolerance_db: float = 0.0) -> dict:
    """A sweep's points and whether each step up raised ROI PSNR by more than ``tolerance_db``."""
    steps = [b - a for a, b in zip(roi_psnr, roi_psnr[1:])]
    return {"x": list(xs), "roi_psnr_db": [round(v, 3) for v in roi_psnr], "steps_db": [round(s, 3) for s in steps],
            "rise_db": round(roi_psnr[-1] - roi_psnr[0], 3), "monotonic": all(s > tolerance_db for s in steps)}


def _roi_psnr(model, items: ReconstructItems, boxes: list, snr_db: float, budget: int, share: float, seed: int,
              channel: str) -> float:
    received, _ = reconstruct_point(model, items, boxes, "importance", channel, snr_db, budget, share, seed)
    return mean(image_scores(received, items)["roi_psnr_db"])["value"]


def refinement(model, items: ReconstructItems, snr_db: float = 12.0, shares=(0.3, 0.5, 0.7, 0.9), share_budget=512,
               budgets=(256, 512, 1024, 2048), budget_share: float = 0.7, seed: int = 0, channel: str = "awgn",
               tolerance_db: float = 0.0) -> dict:
    """``model``: anything with the codec's ``encoder`` and ``decoder`` (a
    :class:`~semcom_cli.reconstruct.model.ReconstructModel`). → {"roi_share": curve, "budget": curve, the
    conditions}; the same seed gives the same numbers."""
    boxes = [box_of_mask(m) for m in items.masks]
    by_share = [_roi_psnr(model, items, boxes, snr_db, share_budget, s, seed, channel) for s in shares]
    by_budget = [_roi_psnr(model, items, boxes, snr_db, b, budget_share, seed, channel) for b in budgets]
    return {"snr_db": snr_db, "channel": channel, "items": len(boxes), "seed": seed, "box": "true",
            "roi_share": {**curve_summary(list(shares), by_share, tolerance_db), "budget": share_budget},
            "budget": {**curve_summary(list(budgets), by_budget, tolerance_db), "roi_share": budget_share}}

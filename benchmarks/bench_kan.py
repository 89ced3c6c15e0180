"""Time and memory of semcom's KAN layer against pykan's KANLayer and an MLP, in one run.

    .venv/bin/python benchmarks/bench_kan.py [--shapes 256x64x576,4096x64x576,...] [--json out.json]

For every shape (batch × in → out; grid 5, spline order 3) it times forward plus
backward (gradients for the weights and the input) of pykan's ``KANLayer``,
``semcom_cli.models.kan.KANLinear`` holding the same weights, and a two-layer SiLU MLP
with as many trainable parameters, and prints the ratios with its targets:
KANLinear ≥ 20× faster than pykan, ≤ 2× the MLP's time, ≤ 1e-5 from pykan's
output (inputs inside and far outside the grid), ≤ 3× the MLP's peak memory.
Peak memory is each variant's rise in peak resident memory during one forward
plus backward, measured in a fresh process. The default shapes: the projector at
the align stage's batch (256 rows, 64 → 576), the design brief's 4096×64→576, a larger
one, and the channel encoder's wide first layer (576 → 64), where the basis
work outweighs the matrix product and the MLP comparison is least favourable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from semcom_cli.models.kan import GRID_RANGE, KANLinear

GRID, ORDER = 5, 3
TARGETS = {"speedup_vs_pykan": 20.0, "time_vs_mlp": 2.0, "max_abs_diff": 1e-5, "memory_vs_mlp": 3.0}


def parse_shape(text: str) -> tuple[int, int, int]:
    batch, in_dim, out_dim = (int(v) for v in text.lower().split("x"))
    return batch, in_dim, out_dim


def build(variant: str, in_dim: int, out_dim: int, seed: int = 0) -> nn.Module:
    """The three contenders; pykan's layer and ours share weights (same seed, then converted)."""
    from kan.KANLayer import KANLayer

    torch.manual_seed(seed)
    reference = KANLayer(in_dim, out_dim, num=GRID, k=ORDER, grid_range=list(GRID_RANGE),
                         save_plot_data=False)
    if variant == "pykan":
        return PykanOutput(reference)
    if variant == "semcom":
        return KANLinear.from_pykan(reference)
    trainable = sum(p.numel() for p in reference.parameters() if p.requires_grad)
    hidden = round((trainable - out_dim) / (in_dim + 1 + out_dim))
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))


class PykanOutput(nn.Module):
    """pykan's KANLayer returns (y, preacts, postacts, postspline); keep y."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


def forward_backward(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    x.grad = None
    module(x).backward(grad)


def median_time(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, repeats: int) -> float:
    forward_backward(module, x, grad)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_backward(module, x, grad)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _resident_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory_child(variant: str, batch: int, in_dim: int, out_dim: int) -> int:
    """Rise in peak resident memory (bytes) over one forward + backward; run in a fresh process."""
    module = build(variant, in_dim, out_dim)
    x = torch.randn(batch, in_dim, requires_grad=True)
    grad = torch.randn(batch, out_dim)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak-resident-memory mark to the current size
    before = _resident_kib("VmRSS")
    forward_backward(module, x, grad)
    return (_resident_kib("VmHWM") - before) * 1024


def peak_memory(variant: str, shape: tuple[int, int, int]) -> int | None:
    if not os.path.exists("/proc/self/clear_refs"):
        return None  # not Linux: no per-process peak to reset
    # A fixed mmap threshold keeps glibc from changing its strategy half-way through a run.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, __file__, "--peak-memory-of", variant, "x".join(map(str, shape))],
                         capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip())


def max_abs_diff(in_dim: int, out_dim: int, batch: int) -> dict[str, float]:
    reference, ours = build("pykan", in_dim, out_dim), build("semcom", in_dim, out_dim)
    with torch.no_grad():  # non-trivial weights: pykan's initial coefficients are tiny
        reference.layer.coef.normal_(generator=torch.Generator().manual_seed(1))
        ours.coef.copy_(reference.layer.coef)
    gen = torch.Generator().manual_seed(2)
    result = {}
    for where, spread in (("inside_grid", 0.7), ("outside_grid", 5.0)):
        x = torch.randn(batch, in_dim, generator=gen) * spread
        with torch.no_grad():
            result[where] = (ours(x) - reference(x)).abs().max().item()
    return result


def bench_shape(shape: tuple[int, int, int], repeats: int, pykan_repeats: int) -> dict:
    batch, in_dim, out_dim = shape
    torch.manual_seed(0)
    x = torch.randn(batch, in_dim, requires_grad=True)
    grad = torch.randn(batch, out_dim)
    row: dict = {"shape": f"{batch}x{in_dim}->{out_dim}"}
    for variant in ("pykan", "semcom", "mlp"):
        module = build(variant, in_dim, out_dim)
        row[f"{variant}_params"] = sum(p.numel() for p in module.parameters() if p.requires_grad)
        row[f"{variant}_s"] = median_time(module, x, grad, pykan_repeats if variant == "pykan" else repeats)
        del module
        row[f"{variant}_peak_bytes"] = peak_memory(variant, shape)
    row["max_abs_diff"] = max_abs_diff(in_dim, out_dim, min(batch, 1024))
    row["speedup_vs_pykan"] = row["pykan_s"] / row["semcom_s"]
    row["time_vs_mlp"] = row["semcom_s"] / row["mlp_s"]
    row["memory_vs_mlp"] = (row["semcom_peak_bytes"] / row["mlp_peak_bytes"]
                            if row["mlp_peak_bytes"] else None)
    worst = max(row["max_abs_diff"].values())
    row["targets_met"] = {
        "speedup_vs_pykan": row["speedup_vs_pykan"] >= TARGETS["speedup_vs_pykan"],
        "time_vs_mlp": row["time_vs_mlp"] <= TARGETS["time_vs_mlp"],
        "max_abs_diff": worst <= TARGETS["max_abs_diff"],
        "memory_vs_mlp": row["memory_vs_mlp"] is not None and row["memory_vs_mlp"] <= TARGETS["memory_vs_mlp"],
    }
    return row


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"KAN forward+backward, grid {GRID}, order {ORDER}, float32, "
                        f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for col in ("shape", "pykan s", "semcom s", "MLP s", "vs pykan", "vs MLP time",
                "max |Δ|", "peak MiB pykan/semcom/MLP", "vs MLP mem"):
        table.add_column(col, justify="right")
    mib = lambda b: "n/a" if b is None else f"{b / 2**20:.0f}"  # noqa: E731
    mark = lambda ok: "" if ok else " ✗"  # noqa: E731
    for r in rows:
        met = r["targets_met"]
        table.add_row(
            r["shape"], f"{r['pykan_s']:.3f}", f"{r['semcom_s']:.4f}", f"{r['mlp_s']:.4f}",
            f"{r['speedup_vs_pykan']:.1f}×{mark(met['speedup_vs_pykan'])}",
            f"{r['time_vs_mlp']:.2f}×{mark(met['time_vs_mlp'])}",
            f"{max(r['max_abs_diff'].values()):.1e}{mark(met['max_abs_diff'])}",
            f"{mib(r['pykan_peak_bytes'])}/{mib(r['semcom_peak_bytes'])}/{mib(r['mlp_peak_bytes'])}",
            ("n/a" if r["memory_vs_mlp"] is None else f"{r['memory_vs_mlp']:.2f}") + mark(met["memory_vs_mlp"]),
        )
    Console(width=max(120, Console().width)).print(table)
    print(f"targets: ≥{TARGETS['speedup_vs_pykan']:g}× faster than pykan, ≤{TARGETS['time_vs_mlp']:g}× MLP time, "
          f"|Δ| ≤ {TARGETS['max_abs_diff']:g}, ≤{TARGETS['memory_vs_mlp']:g}× MLP peak memory (✗ = missed)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="256x64x576,4096x64x576,8192x64x1152,1536x576x64",
                        help="comma-separated batch x in x out")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of KANLinear and the MLP")
    parser.add_argument("--pykan-repeats", type=int, default=3, help="timed runs of pykan (slow)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--peak-memory-of", nargs=2, metavar=("VARIANT", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_of:
        variant, shape = args.peak_memory_of
        print(peak_memory_child(variant, *parse_shape(shape)))
        return 0
    try:
        shapes = [parse_shape(s) for s in args.shapes.split(",")]
    except ValueError:
        parser.error(f"--shapes: expected e.g. 4096x64x576, got {args.shapes!r}")
    rows = [bench_shape(s, args.repeats, args.pykan_repeats) for s in shapes]
    print_table(rows)
    if args.json:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
                "python": platform.python_version(), "grid": GRID, "spline_order": ORDER, "targets": TARGETS}
        with open(args.json, "w") as out:
            json.dump({"meta": meta, "rows": rows}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The package's layers, read from the source with ``ast``: no import cycle between parts, no part importing
a higher one, imports inside functions only for heavy third-party libraries (with the reason beside them),
benchmarks on the library alone, and help texts that answer without importing torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from semcom_cli import LAYERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "semcom_cli"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _imports(path: Path):
    """(target module, inside a function?, line number, source line) of every import in ``path``."""
    name = _module_name(path)
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner |= {id(n) for n in ast.walk(node) if n is not node}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                targets = [".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))]
            else:
                targets = [node.module or ""]
        else:
            continue
        for target in targets:
            yield target, id(node) in inner, node.lineno, "\n".join(lines[node.lineno - 1: node.end_lineno])


def _part(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if bits[0] == "semcom_cli" and len(bits) > 1 else None


def _sources(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "flower_app" not in p.parts)


def _part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _sources(PACKAGE):
        me = _part(_module_name(path))
        for target, _, _, _ in _imports(path):
            other = _part(target)
            if me and other and other != me:
                graph.setdefault(me, set()).add(other)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_every_part_has_a_layer():
    parts = {p.name for p in PACKAGE.iterdir() if (p.is_dir() and (p / "__init__.py").exists())}
    parts |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert parts - {"_data"} == set(LAYERS), "a new part needs its place in semcom_cli.LAYERS"


def test_no_import_cycle_between_parts():
    assert _cycle(_part_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_a_part_imports_only_lower_parts():
    upward = []
    for path in _sources(PACKAGE):
        me = _part(_module_name(path))
        for target, _, line, _ in _imports(path):
            other = _part(target)
            if me and other and LAYERS.index(other) > LAYERS.index(me):
                upward.append(f"{path.relative_to(ROOT)}:{line} {me} → {other}")
    assert not upward


def test_imports_inside_functions_are_heavy_libraries_with_a_reason():
    found = []
    for path in _sources(PACKAGE):
        if _part(_module_name(path)) == "cli":  # commands import the library when they run: fast help texts
            continue
        for target, inner, line, source in _imports(path):
            if not inner:
                continue
            if target.startswith("semcom_cli") or "heavy" not in source.partition("#")[2]:
                found.append(f"{path.relative_to(ROOT)}:{line} {target}")
    assert not found


def test_benchmarks_use_the_library_not_the_commands():
    found = [f"{path.name}:{line}" for path in _sources(ROOT / "benchmarks")
             for target, _, line, _ in _imports(path) if _part(target) == "cli"]
    assert not found


@pytest.mark.parametrize("command", ["", "align", "finetune", "encode", "transmit", "decode", "evaluate",
                                     "rate-table", "compress", "scenes", "guide", "info", "kb", "kb build"])
def test_help_answers_without_importing_torch(command):
    script = ("import sys\n"
              f"sys.argv = ['semcom', *{command.split()!r}, '--help']\n"
              "from semcom_cli.cli.app import main\n"
              "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
              "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH 0", out.stderr[-500:]
    assert "Usage" in out.stdout


def test_the_gpu_training_script_needs_no_presets_files_or_channel_library():
    """benchmarks/generative_gpu.py runs on a lent GPU with torch, diffusers and pydantic carried: its imports
    must not reach YAML presets, Sionna, transformers, Flower or FAISS (the light modules it uses stay light)."""
    script = ("import runpy, sys\n"
              "for name in ('yaml', 'sionna', 'transformers', 'flwr', 'faiss'):\n"
              "    sys.modules[name] = None\n"
              "runpy.run_path('benchmarks/generative_gpu.py', run_name='imported')\n"
              "print('imported')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "imported", out.stderr[-800:]

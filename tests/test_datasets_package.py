"""The datasets package's shape (issue 14): no import cycles, none hidden in functions, the base modules
import no dataset module, and every dataset name of ``--dataset`` loads its module."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from opts import DATASETS

PACKAGE = Path(__file__).resolve().parent.parent / "datasets"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.AST) -> list[str]:
    """The project modules under ``datasets`` that one import statement loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
    else:
        return []
    # "from datasets import x": x is a module or a name in datasets/__init__; keep what is a module
    return sorted({n for n in names if n in MODULES and (n != "datasets" or isinstance(node, ast.Import)
                                                         or not any(f"{n}.{a.name}" in MODULES for a in node.names))})


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """``module -> modules it imports`` and the imports of package modules made inside functions."""
    graph, hidden = {}, []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set()
        for top in tree.body:
            for node in ast.walk(top):
                found = set(imported(node)) - {name}
                graph[name] |= found
                if found and isinstance(top, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    hidden.append(f"{name} imports {sorted(found)} inside {top.name}")
    return graph, hidden


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, stack + [nxt])):
                return cycle
        state[node] = 2
        return None
    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_and_none_hidden():
    graph, hidden = import_graph()
    assert graph["datasets.frames"] >= {"datasets.frame_index", "datasets.fast_frames", "datasets.device_decode"}
    assert find_cycle(graph) is None
    assert hidden == []


def test_base_modules_import_no_dataset():
    graph, _ = import_graph()
    dataset_modules = {f"datasets.{name}" for name in DATASETS}
    for name, deps in graph.items():
        if name not in dataset_modules and name != "datasets":
            assert not deps & dataset_modules, f"{name} imports the dataset module(s) {deps & dataset_modules}"


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_name_has_its_module(name):
    assert callable(importlib.import_module(f"datasets.{name}").get)

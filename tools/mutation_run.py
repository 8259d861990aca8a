"""Mutation run: how many small deliberate bugs do the tests of each core module catch?

For each module below, the script lists the small changes a reviewer would try (a flipped comparison, an
off-by-one constant or slice bound, a swapped ``and``/``or``, ``+``/``-`` and ``*``/``/`` swaps, a dropped
``not``, a negated ``if``, a dropped statement), picks up to ``--cap`` of them per module by a seeded hash
of the changed line's text (so the pick is reproducible and stays the same where a line did not change),
and applies them one at a time to a scratch copy of the tree, running the tests that mirror the module
(``pytest -x``, with a timeout).  A mutant is *killed* when the tests fail, *survived* when they pass and
*timeout* when they hang.  Logging and ``print`` calls, docstrings, f-strings and type annotations are not
mutated (messages, not behaviour).

The tests run in processes forked from this one after torch, numpy and pytest are imported (never a
module of the project), so each mutant costs its tests, not another interpreter start-up.  The working
tree is never written: the copy lives in a temporary folder (``--scratch``) and its bytecode caches are
removed and never written, so a mutant cannot reach a later run through a stale ``.pyc``.

Slow (tens of minutes): not part of the test suite or CI.  Usage::

    python tools/mutation_run.py                       # the working tree, every module
    python tools/mutation_run.py --rev fac082d         # a commit (git archive), e.g. before a change
    python tools/mutation_run.py --modules utils/submission.py --cap 40 --json out.json
    python tools/mutation_run.py --list                # the mutants only, no tests run
    python tools/mutation_run.py --ids 3fa2c1d0,77b0e912   # these mutants only (ids from a report)
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module -> the tests that use it, the mirrored file first (pytest -x stops at the first failure)
TESTS = {
    "models/field.py": ["tests/test_field.py", "tests/test_asynctf.py"],
    "models/message_buffer.py": ["tests/test_message_buffer.py", "tests/test_asynctf.py"],
    "models/asynctf.py": ["tests/test_asynctf.py"],
    "utils/charades_eval.py": ["tests/test_charades_eval.py", "tests/test_charades_eval_ranks.py"],
    "utils/submission.py": ["tests/test_submission.py"],
    "datasets/frame_index.py": ["tests/test_frame_index.py", "tests/test_frame_index_original.py",
                                "tests/test_index_cache.py"],   # the index's cache and header check
    # test_resume.py's other tests rerun the same resume (killed, with workers): one is enough, and slow
    "checkpoints/run_state.py": ["tests/test_run_state.py", "tests/test_trust.py",
                                 "tests/test_resume.py::test_resume_at_epoch_boundary_is_exact[0]"],
    "checkpoints/safe_load.py": ["tests/test_safe_load.py", "tests/test_checkpoints.py", "tests/test_trust.py"],
    "utils/atomic.py": ["tests/test_atomic.py", "tests/test_submission.py", "tests/test_checkpoints.py"],
    "combine_rgb_flow.py": ["tests/test_combine_rgb_flow.py"],
    "utils/fusion.py": ["tests/test_fusion.py", "tests/test_combine_rgb_flow.py"],   # combine's weights and sums
    "utils/video_frames.py": ["tests/test_video_frames.py", "tests/test_extract_frames.py"],
}
NOT_MUTATED_CALLS = {"print", "log", "logging", "logger"}  # f(...) or f.x(...): messages only

CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
       ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
       ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
       ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}


@dataclass
class Mutant:
    module: str
    line: int
    before: str      # the source text replaced
    after: str       # what replaces it
    start: int       # byte offsets of the replaced text in the module's source
    end: int
    id: str = ""
    status: str = ""  # killed, survived, timeout
    seconds: float = 0.0
    failed: str = ""  # the first failing test (killed)

    def describe(self, width: int = 70) -> str:
        short = lambda s: " ".join(s.split())[:width]  # noqa: E731
        return f"{self.module}:{self.line}: `{short(self.before)}` -> `{short(self.after)}`"


# ------------------------------------------------------------------------------------------ mutants

class _Finder(ast.NodeVisitor):
    """Collects ``(node, replacement source)`` for every mutation of a module, in source order."""

    def __init__(self):
        self.found: list[tuple[ast.AST, str]] = []

    def add(self, node: ast.AST, new: ast.AST | str) -> None:
        self.found.append((node, new if isinstance(new, str) else f"({ast.unparse(new)})"))

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.JoinedStr):
            return  # f-strings: positions inside them are unreliable, and they are messages
        if isinstance(node, ast.Call) and _call_root(node.func) in NOT_MUTATED_CALLS:
            return
        if isinstance(node, ast.If) and _is_main_guard(node):
            return
        super().visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._body(node.body)  # not the annotations, defaults are rarely behaviour worth a mutant
        for d in node.decorator_list:
            self.visit(d)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._body(node.body)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def _body(self, body: list[ast.stmt]) -> None:
        for k, stmt in enumerate(body):
            if k == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # docstring
            self.visit(stmt)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return

    def generic_visit(self, node: ast.AST) -> None:
        self._mutate(node)
        super().generic_visit(node)

    def _mutate(self, node: ast.AST) -> None:
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in CMP:
                    new = copy.deepcopy(node)
                    new.ops[i] = CMP[type(op)]()
                    self.add(node, new)
        elif isinstance(node, ast.BinOp) and type(node.op) in BIN:
            self.add(node, ast.BinOp(copy.deepcopy(node.left), BIN[type(node.op)](), copy.deepcopy(node.right)))
        elif isinstance(node, ast.BoolOp):
            self.add(node, ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(),
                                      copy.deepcopy(node.values)))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            self.add(node, copy.deepcopy(node.operand))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            value = (not node.value) if isinstance(node.value, bool) else node.value + 1
            self.add(node, repr(value))
        elif isinstance(node, ast.Slice):
            if node.upper is not None:
                self.add(node.upper, f"({ast.unparse(node.upper)}) - 1")
            if node.lower is not None:
                self.add(node.lower, f"({ast.unparse(node.lower)}) + 1")
        elif isinstance(node, ast.AugAssign) and type(node.op) in BIN:
            new = copy.deepcopy(node)
            new.op = BIN[type(node.op)]()
            self.add(node, ast.unparse(new))
            self.add(node, "pass")
        elif isinstance(node, ast.If) and not isinstance(node.test, (ast.Compare, ast.UnaryOp, ast.BoolOp)):
            self.add(node.test, f"(not {ast.unparse(node.test)})")
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and _call_root(node.value.func) in NOT_MUTATED_CALLS:
            return
        if isinstance(node, (ast.Expr, ast.Raise, ast.Continue, ast.Break)) or (
                isinstance(node, ast.Assign) and any(isinstance(t, (ast.Subscript, ast.Attribute)) for t in node.targets)):
            self.add(node, "pass")


def _call_root(func: ast.AST) -> str:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else ""


def _is_main_guard(node: ast.If) -> bool:
    return "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test)


def mutants(module: str, source: str, seed: int, cap: int) -> list[Mutant]:
    """Up to ``cap`` mutants of ``source`` (that compile), picked by a seeded hash of each changed line's text."""
    data = source.encode()
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    lines = source.splitlines()
    finder = _Finder()
    finder.visit(ast.parse(source))
    keyed, seen = [], {}
    for node, new in finder.found:
        a = starts[node.lineno - 1] + node.col_offset  # col offsets are UTF-8 byte offsets
        b = starts[node.end_lineno - 1] + node.end_col_offset
        m = Mutant(module, node.lineno, data[a:b].decode(), new, a, b)
        try:
            compile(apply(data, m), module, "exec")
        except SyntaxError:
            continue
        text = f"{lines[node.lineno - 1].strip()}|{m.before}|{m.after}"
        seen[text] = seen.get(text, 0) + 1  # the same change twice on one line text: numbered
        m.id = hashlib.sha1(f"{module}|{text}|{seen[text]}".encode()).hexdigest()[:8]
        keyed.append((hashlib.sha1(f"{seed}|{m.id}".encode()).hexdigest(), m))
    chosen = [m for _, m in sorted(keyed, key=lambda km: km[0])[:cap]]
    return sorted(chosen, key=lambda m: (m.start, m.id))


def apply(data: bytes, m: Mutant) -> bytes:
    return data[:m.start] + m.after.encode() + data[m.end:]


# ------------------------------------------------------------------------------------------ running

def scratch_copy(rev: str | None, dest: str) -> None:
    """The tree to mutate: commit ``rev`` (git archive) or the working tree's tracked and untracked,
    not ignored files."""
    if rev:
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        return
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "-z"], check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def run_tests(tree: str, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """``(status, seconds, first failure)`` of ``pytest -x tests`` in a child forked from this process."""
    out = os.path.join(tree, ".mutation_log.txt")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: its own process group, so a timeout kills what it started too
        code = 3
        try:
            os.setsid()
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(tree)
            sys.path.insert(0, tree)
            import pytest
            code = int(pytest.main(["-q", "-x", "-rf", "-p", "no:cacheprovider", *tests]))
        finally:
            sys.stdout.flush()
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - start, ""
        time.sleep(0.05)
    seconds = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    failed = ""
    with open(out, errors="replace") as f:
        for line in f:
            if line.startswith(("FAILED", "ERROR")):
                failed = line.strip()[:160]
                break
    return ("survived" if code == 0 else "killed"), seconds, failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rev", help="mutate this commit (git archive) instead of the working tree")
    p.add_argument("--modules", nargs="+", default=list(TESTS), choices=list(TESTS), metavar="MODULE")
    p.add_argument("--cap", type=int, default=30, help="mutants per module (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pick (default 0)")
    p.add_argument("--ids", default="", help="only these mutant ids (comma-separated)")
    p.add_argument("--timeout-factor", type=float, default=3.0,
                   help="a mutant times out after this many times its tests' clean run, plus 60 s (then "
                        "it is tried once more with twice that)")
    p.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    p.add_argument("--json", help="write every mutant's result here")
    p.add_argument("--scratch", help="folder for the copy of the tree (default: a new temporary folder)")
    args = p.parse_args(argv)
    ids = set(filter(None, args.ids.split(",")))

    tree = tempfile.mkdtemp(prefix="mutation_", dir=args.scratch)
    try:
        scratch_copy(args.rev, tree)
        for dirpath, dirnames, _ in os.walk(tree):
            if "__pycache__" in dirnames:
                shutil.rmtree(os.path.join(dirpath, "__pycache__"))
        sys.dont_write_bytecode = True  # inherited by the forked children
        # a mutant of utils/atomic.py signals the test process's parent (this one) with SIGHUP
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # and by the processes the tests start
        if not args.list:
            import numpy  # noqa: F401  (imported once here, shared by every forked test run)
            import pytest  # noqa: F401
            import torch  # noqa: F401
            import torchvision  # noqa: F401
        results = []
        for module in args.modules:
            path = os.path.join(tree, module)
            source = open(path, encoding="utf-8").read()
            chosen = [m for m in mutants(module, source, args.seed, args.cap) if not ids or m.id in ids]
            tests = [t for t in TESTS[module] if os.path.isfile(os.path.join(tree, t.split("::")[0]))]
            if args.list:
                for m in chosen:
                    print(f"{m.id} {m.describe()}")
                continue
            if not chosen:
                continue
            status, clean, failed = run_tests(tree, tests, 1800)
            if status != "survived":
                print(f"{module}: its tests fail without any mutant ({failed or status}); skipped", flush=True)
                continue
            print(f"{module}: {len(chosen)} mutants, tests {' '.join(tests)} ({clean:.1f} s clean)", flush=True)
            data = source.encode()
            for m in chosen:
                with open(path, "wb") as f:
                    f.write(apply(data, m))
                try:
                    limit = args.timeout_factor * clean + 60
                    m.status, m.seconds, m.failed = run_tests(tree, tests, limit)
                    if m.status == "timeout":  # once more with twice the time: a busy machine is not a hang
                        m.status, m.seconds, m.failed = run_tests(tree, tests, 2 * limit)
                finally:
                    with open(path, "wb") as f:
                        f.write(data)
                print(f"  {m.status:8s} {m.seconds:6.1f} s  {m.id} {m.describe()}", flush=True)
                results.append(m)
                if args.json:  # after every mutant: an interrupted run keeps what it measured
                    with open(args.json, "w") as f:
                        json.dump([asdict(r) for r in results], f, indent=1)
        if not args.list:
            report(results, args.modules)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return 0


def report(results: list[Mutant], modules: list[str]) -> None:
    """Per module: killed / survived / timeout and the kill rate (timeouts count as caught), then the survivors."""
    print("\n| module | mutants | killed | survived | timeout | caught |\n|---|---|---|---|---|---|")
    for module in modules:
        ms = [m for m in results if m.module == module]
        if ms:
            n = {s: sum(m.status == s for m in ms) for s in ("killed", "survived", "timeout")}
            print(f"| {module} | {len(ms)} | {n['killed']} | {n['survived']} | {n['timeout']} | "
                  f"{100 * (n['killed'] + n['timeout']) / len(ms):.0f}% |")
    survivors = [m for m in results if m.status == "survived"]
    print(f"\nsurvivors ({len(survivors)}):")
    for m in survivors:
        print(f"  {m.id} {m.describe(100)}")


if __name__ == "__main__":
    sys.exit(main())

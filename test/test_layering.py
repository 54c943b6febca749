"""The house can be drawn: core <- io <- ros / train <- applications, no cycles, nothing installed imports
what is not installed (train/, demo/, bench/)."""
import ast
import importlib.util
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "md2_ros"
LAYER = {"core": 0, "io": 1, "ros": 2}      # md2_ros.<layer>; anything else in md2_ros is an application (3)
NEEDS_ROS = ("md2_ros.ros",)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PKG.rglob("*.py"))


def imports_of(name: str) -> set[str]:
    """md2_ros modules ``name`` imports anywhere in its file (top level or inside functions: lazy counts)."""
    path = ROOT / (name.replace(".", "/") + ".py")
    if not path.is_file():
        path = ROOT / name.replace(".", "/") / "__init__.py"
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):   # a package's own parents are not edges
                out.add(t)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYER.get(parts[1], 3) if len(parts) > 1 else 3


def test_installed_package_never_imports_train_demo_or_bench():
    bad = []
    for path in PKG.rglob("*.py"):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from|import)\s+(train|demo|bench)\b", line):
                bad.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "active"
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == "active":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for m in MODULES:
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_layers_point_down():
    """core imports nothing above it, io only core, ros only io/core; applications may import anything."""
    up = [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
          for m, deps in GRAPH.items() for d in deps if layer(d) > layer(m) and layer(m) < 3]
    assert not up, "\n".join(up)


def _import_alone(name: str) -> tuple[str, int, str]:
    r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    return name, r.returncode, r.stderr[-1500:]


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    names = [m for m in MODULES if not m.startswith(NEEDS_ROS) or importlib.util.find_spec("rclpy")]
    with ThreadPoolExecutor(2) as pool:
        failed = [f"{n}: {err}" for n, rc, err in pool.map(_import_alone, names) if rc != 0]
    assert not failed, "\n\n".join(failed)

"""The import graph of src/neuroplastic: no cycle larger than 3 modules, function-level imports only for heavy
optional dependencies, no method, topology or agent module (but the agents' base) that imports the captured
update, and workflow steps that load only what they need.

Every import counts: at module level, inside a function, or under `if TYPE_CHECKING:`. A function-level or
type-only import that only breaks a cycle still couples the two modules.
An edge goes to the module an import names (`from a.b import c` names `a.b.c` when that is a module, else
`a.b`), not to the packages it passes through.

Run as a script to print the largest cycle and the function-level imports:
`PYTHONPATH=src python tests/unit/test_import_graph.py`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = "neuroplastic"
SRC = Path(__file__).resolve().parents[2] / "src"
MAX_CYCLE = 3
# A function-level import is for a heavy or optional dependency only: the Atari emulator, DeepMind Control and
# MuJoCo, plotting, TensorBoard's event files, parquet, torch (the read-only commands, `status` and `watch`,
# run without it) and the bootstrap statistics (rliable, scipy.stats: a figure's render step runs without them).
# Everything else is imported at module level.
HEAVY_OPTIONAL = ("ale_py", "dm_control", "mujoco", "matplotlib", "rliable", "scipy", "tensorboard", "pyarrow", "torch")
# The command-line modules load each subcommand's modules when it runs: `neuroplastic status` does not load the
# training stack, and `--threads` takes effect before torch is loaded.
COMMAND_MODULES = ("neuroplastic.cli", "neuroplastic.analysis.commands", "neuroplastic.watch")


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    files = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, modules: set[str]) -> list[tuple[str, bool, int]]:
    """(imported name, inside a function?, line) for every import in the file; names are dotted targets,
    which may be a module, a package or an attribute of one."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve_from(module, is_package, child)
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in modules else target, in_function, child.lineno))
            visit(child, nested)

    visit(tree, False)
    return found


def _owning_module(name: str, modules: set[str]) -> str | None:
    """The longest module prefix of a dotted name (`neuroplastic.config.RunConfig` -> `neuroplastic.config`)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package modules it imports (directly or by running an enclosing package)."""
    files = module_files(src)
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in files.items():
        for name, _, _ in _imports(module, path, modules):
            target = _owning_module(name, modules)
            if target is not None and target not in (module, PACKAGE):
                graph[module].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components sorted largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components, key=len, reverse=True)


def function_level_imports(src: Path = SRC) -> list[tuple[str, int, str]]:
    """(module, line, imported name) for every import inside a function."""
    files = module_files(src)
    modules = set(files)
    found = {
        (module, line, name)
        for module, path in files.items()
        for name, in_function, line in _imports(module, path, modules)
        if in_function
    }
    return sorted(found)


def _lazy_allowed(module: str, name: str) -> bool:
    return module in COMMAND_MODULES or name.split(".")[0] in HEAVY_OPTIONAL


def test_largest_import_cycle_is_small() -> None:
    largest = strongly_connected(import_graph())[0]
    assert len(largest) <= MAX_CYCLE, f"import cycle of {len(largest)} modules: {largest}"


def test_function_level_imports_only_for_heavy_optional_dependencies() -> None:
    offending = [f"{m}:{line} {name}" for m, line, name in function_level_imports() if not _lazy_allowed(m, name)]
    assert not offending, "function-level imports of light modules:\n" + "\n".join(offending)


def test_methods_and_topology_do_not_import_capture() -> None:
    """How an update runs (eager, compiled, CUDA graph) is capture.py's alone: a method's per-update work is its
    update hooks and its host hook `before_update`, whichever way the update runs (docs/design.md)."""
    knowing = [
        module
        for module, targets in import_graph().items()
        if module.startswith(("neuroplastic.methods", "neuroplastic.topology")) and "neuroplastic.capture" in targets
    ]
    assert not knowing, f"these modules import neuroplastic.capture: {sorted(knowing)}"


def test_agents_other_than_the_base_do_not_import_capture() -> None:
    """An agent's `learn` is a plain function of tensors: per-update host values reach it through device tensors its
    `before_learn` refreshes, and only `Agent._optimize` (agents/base.py) steps optimizers through capture.py."""
    knowing = [
        module
        for module, targets in import_graph().items()
        if module.startswith("neuroplastic.agents")
        and module != "neuroplastic.agents.base"
        and "neuroplastic.capture" in targets
    ]
    assert not knowing, f"these modules import neuroplastic.capture: {sorted(knowing)}"


# Imports each module named on the command line as the first module of the package in the process (the package is
# dropped from sys.modules between them; torch and the other dependencies stay loaded), and prints the ones that fail.
_IMPORT_EACH_FIRST = r"""
import importlib, sys, traceback
import torch  # noqa: F401  (loaded once; the package's own modules are what is re-imported)
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "neuroplastic" or m.startswith("neuroplastic.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ":\n" + traceback.format_exc(limit=-4))
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -c code args…` in a fresh interpreter that imports the package from SRC."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )


def test_every_module_imports_as_the_first_one() -> None:
    # A cycle that the graph tolerates (type-only or within 3 modules) still breaks at run time when one of its
    # modules reads a half-initialised other; which one is loaded first decides it (the Snakefile loads
    # `experiments` first, the tests mostly `config`), so every module is tried first.
    proc = _python(_IMPORT_EACH_FIRST, *module_files())
    assert proc.returncode == 0, f"modules that fail when imported first:\n{proc.stdout}{proc.stderr[-2000:]}"


# The workflow starts one process per aggregate, figure-data and render job (~130 in the smoke DAG): each
# loads only what its step needs.
_STEP_MODULES = {
    "aggregate": ("neuroplastic.analysis.aggregate", ("torch", "scipy", "rliable", "matplotlib")),
    "figure render": ("neuroplastic.figures", ("torch", "scipy", "rliable")),
}


def test_workflow_steps_load_only_what_they_need() -> None:
    for step, (module, absent) in _STEP_MODULES.items():
        proc = _python(f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "", f"the {step} step ({module}) loads {proc.stdout.strip()}"


def test_the_checker_finds_a_cycle_through_function_level_imports(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from neuroplastic.sub import b\n")
    (pkg / "a.py").write_text("def f():\n    from neuroplastic.sub.b import g\n")
    (pkg / "sub" / "b.py").write_text("from .. import c\n")
    (pkg / "c.py").write_text("import neuroplastic.a\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import neuroplastic.e\n")
    (pkg / "e.py").write_text("import neuroplastic.d\n")
    components = strongly_connected(import_graph(tmp_path))
    assert components[:2] == [
        ["neuroplastic.a", "neuroplastic.c", "neuroplastic.sub.b"],
        ["neuroplastic.d", "neuroplastic.e"],
    ]
    assert all(len(c) == 1 for c in components[2:])
    assert function_level_imports(tmp_path) == [("neuroplastic.a", 2, "neuroplastic.sub.b")]


if __name__ == "__main__":
    components = strongly_connected(import_graph())
    print(f"{len(module_files())} modules; largest import cycle: {len(components[0])} modules")
    for component in components:
        if len(component) > 1:
            print(f"  {len(component)}: {' '.join(m.removeprefix(PACKAGE + '.') for m in component)}")
    lazy = function_level_imports()
    light = [x for x in lazy if not _lazy_allowed(x[0], x[2])]
    print(f"{len(lazy)} function-level imports, {len(light)} of light modules:")
    for module, line, name in light:
        print(f"  {module}:{line} {name}")

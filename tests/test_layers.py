"""The module map of docs/ARCHITECTURE.md, enforced: every module of src/bertkit sits in one
layer, imports only from its own layer or the layers below (function-local imports included),
and the import graph has no cycle. A new module goes into LAYERS (and the map in the docs)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SRC = REPO / "src"

# Lowest first. A module belongs to the layer of its longest matching name (a package name
# covers its submodules; "bertkit" is the package's __init__ only). docs/ARCHITECTURE.md ("Module map") describes the same table.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "foundation",
        [
            "bertkit",  # the package __init__: version, BertkitError, the lazy public names
            "bertkit.errors",
            "bertkit.fileio",
            "bertkit.outputs",
            "bertkit.settings",
            "bertkit.metrics",
            "bertkit.protowire",
            "bertkit.tb_events",
            "bertkit.hub",
        ],
    ),
    (
        "resources",
        [
            "bertkit.runtime",
            "bertkit.optim",
            "bertkit.ops",
            "bertkit.config",
            "bertkit.tf_checkpoint",
            "bertkit.tokenization",
            "bertkit.corpus",
            "bertkit.embedding_files",
            "bertkit.downloads",
            "bertkit.archives",
            "bertkit.text_sources",
        ],
    ),
    (
        "model, data, loop",
        ["bertkit.checkpoint", "bertkit.model", "bertkit.heads", "bertkit.pretraining", "bertkit.training"],
    ),
    ("tasks", ["bertkit.tasks"]),
    (
        "stages",
        [
            "bertkit.pretrain",
            "bertkit.finetune",
            "bertkit.inference",
            "bertkit.export",
            "bertkit.serve",
            "bertkit.probe",
            "bertkit.report",
        ],
    ),
    ("main job", ["bertkit.quickstart"]),
    ("interface", ["bertkit.cli", "bertkit.__main__"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    base = SRC / name.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """The bertkit modules ``path`` imports anywhere (top level or inside functions);
    ``from pkg import sub`` counts as importing ``pkg.sub``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bertkit"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "bertkit":
            subs = {f"{node.module}.{a.name}" for a in node.names if is_module(f"{node.module}.{a.name}")}
            found |= subs if len(subs) == len(node.names) else subs | {node.module}
    return found


def layer_of(name: str) -> int | None:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or (prefix != "bertkit" and name.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    return None if best is None else best[0]


def graph() -> dict[str, set[str]]:
    out = {}
    for path in sorted((SRC / "bertkit").rglob("*.py")):
        name = module_name(path)
        # a submodule importing its own package (or a parent) is Python's normal package set-up
        out[name] = {m for m in imports_of(path) if m != name and not name.startswith(m + ".")}
    return out


def test_every_module_has_a_layer():
    missing = [m for m in graph() if layer_of(m) is None]
    assert not missing, f"modules in no layer (add them to LAYERS and docs/ARCHITECTURE.md): {missing}"


def test_no_module_imports_from_a_layer_above_it():
    wrong = []
    for name, deps in graph().items():
        mine = layer_of(name)
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{name} ({LAYERS[mine][0]}) imports {dep} ({LAYERS[theirs][0]})")
    assert not wrong, "imports from a layer above:\n" + "\n".join(wrong)


def test_the_import_graph_has_no_cycle():
    g = graph()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(g):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_a_violation(tmp_path):
    """The rule can fail: a model-layer module importing a stage is caught, a new module is in no layer."""
    assert layer_of("bertkit.not_yet_placed") is None
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from bertkit.finetune import finetune\n")
    deps = imports_of(bad)
    assert deps == {"bertkit.finetune"}
    assert layer_of("bertkit.finetune") > layer_of("bertkit.heads")

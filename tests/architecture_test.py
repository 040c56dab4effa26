"""The package's layout rules: import directions, absl/ml_collections, Keras internals, sizes.

Every module under ``pipeline/`` is parsed with :mod:`ast` (nothing is
imported), and each of its ``import`` / ``from ... import`` statements, at
module level or inside a function, is checked against the layer it may
depend on:

==============================================  =========  =================================
modules                                         layer      may import (besides itself)
==============================================  =========  =================================
errors, registry, atomic, fingerprint, _env,    base       nothing else in pipeline
cli, keras_api (``pipeline/<name>.py``)
pruning/                                        pruning    base
training/                                       training   base
data/                                           data       base
litert/                                         litert     base
android/                                        android    base, litert
latency/                                        latency    base, pruning, litert, android
export/                                         export     base, pruning, training, litert
__init__, api, config (``pipeline/<name>.py``)  api        base, pruning, latency
run/, main.py                                   run        anything
==============================================  =========  =================================

Besides the directions:

* absl only in main.py, cli.py, run/ and the three tool CLIs (litert/ab.py,
  android/, latency/grid.py); ml_collections (a ConfigDict) only in main.py
  and run/;
* the Kerases' private graph API (``tf_keras.src``, ``keras.src``,
  ``_keras_history``, ``_inbound_nodes``, ``_nodes_by_depth``,
  ``_network_nodes``, ``_flatten_layers``) only in pipeline/pruning/families/,
  counted in code (imports, attributes, names, strings) but not in docstrings
  or comments; the one exception, ``_flatten_layers`` in keras_api.py (the
  layer walk, which training needs and may not import from pruning);
* ``import pipeline`` loads none of ai_edge_litert, ml_collections,
  matplotlib, tensorflow_model_optimization (checked in a child process);
* no module over 400 lines, at most 11 modules directly in pipeline/.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"

BASE_MODULES = frozenset({"errors", "registry", "atomic", "fingerprint", "_env", "cli",
                          "keras_api"})
API_MODULES = frozenset({"__init__", "api", "config"})
PACKAGE_LAYERS = frozenset({"pruning", "training", "data", "litert", "android", "latency",
                            "export"})
EVERYTHING = frozenset({"base", "api", "run"} | PACKAGE_LAYERS)

# layer -> the layers its modules may import (a layer always may import itself).
ALLOWED = {
    "base": frozenset(),
    "pruning": frozenset({"base"}),
    "training": frozenset({"base"}),
    "data": frozenset({"base"}),
    "litert": frozenset({"base"}),
    "android": frozenset({"base", "litert"}),
    "latency": frozenset({"base", "pruning", "litert", "android"}),
    "export": frozenset({"base", "pruning", "training", "litert"}),
    "api": frozenset({"base", "pruning", "latency"}),
    "run": EVERYTHING,
}

ABSL_ALLOWED = ("pipeline.main", "pipeline.cli", "pipeline.run", "pipeline.litert.ab",
                "pipeline.android", "pipeline.latency.grid")
ML_COLLECTIONS_ALLOWED = ("pipeline.main", "pipeline.run")
KERAS_INTERNALS = ("tf_keras.src", "keras.src", "_keras_history", "_inbound_nodes",
                   "_nodes_by_depth", "_network_nodes", "_flatten_layers")
KERAS_OWNERS = ("pipeline.pruning.families.legacy", "pipeline.pruning.families.keras3")
# One private name has a second owner: the layer walk (no public twin in either Keras),
# which training needs to restore the flags of layers inside custom layers.
LAYER_WALK_OWNER = ("pipeline.keras_api", "_flatten_layers")
NOT_ON_IMPORT = ("ai_edge_litert", "ml_collections", "matplotlib",
                 "tensorflow_model_optimization", "keras.src")
MAX_LINES = 400
# 11: keras_api, the one lookup of a model's Keras that every layer needs, is base.
MAX_TOP_MODULES = 11


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every .py under pipeline/."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def layer_of(module: str) -> str | None:
    """The layer of a ``pipeline`` module (None: a top-level module the table does not place)."""
    parts = module.split(".")
    if parts == ["pipeline"]:
        return "api"  # pipeline/__init__.py, the public surface
    top = parts[1]
    if top in BASE_MODULES:
        return "base"
    if top in API_MODULES:
        return "api"
    if top in ("run", "main"):
        return "run"
    if top in PACKAGE_LAYERS:
        return top
    return None


def imports(module: str, tree: ast.AST):
    """Yields ``(line, imported module, statement text)`` of every import in ``tree``.

    ``from X import a`` names module ``X.a`` when that is a module of the
    package, else ``X``; relative imports are resolved against ``module``.
    """
    package = module if is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if candidate in MODULES else base, ast.unparse(node)


def parsed():
    for module, path in MODULES.items():
        yield module, path, ast.parse(path.read_text(), str(path))


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_every_module_has_a_layer():
    unplaced = [relative(p) for m, p in MODULES.items() if layer_of(m) is None]
    assert not unplaced, (
        f"modules directly in pipeline/ that no layer owns: {unplaced}; add them to the layer "
        "table of tests/architecture_test.py (and the README's Architecture section)")


def direction_violations(module: str, tree: ast.AST, where: str):
    """Yields ``"<where>:<line>: <import>  (<layer> -> <layer>)"`` for each import against the table."""
    mine = layer_of(module)
    for line, target, text in imports(module, tree):
        if not under(target, ["pipeline"]):
            continue
        theirs = layer_of(target)
        if theirs is None or (theirs != mine and theirs not in ALLOWED[mine]):
            yield f"{where}:{line}: {text}  ({mine} -> {theirs})"


def test_imports_point_the_allowed_way():
    violations = []
    for module, path, tree in parsed():
        if layer_of(module) is not None:  # else reported by test_every_module_has_a_layer
            violations.extend(direction_violations(module, tree, relative(path)))
    assert not violations, (
        "imports against the allowed direction (see the table in tests/architecture_test.py):\n"
        + "\n".join(violations))


def test_the_direction_check_sees_imports_in_functions_and_relative_ones():
    """Guards the check above on a made-up pruning module."""
    source = ("import numpy\n"
              "from pipeline import errors, atomic\n"
              "from . import channels\n"
              "def late():\n"
              "    from pipeline.run import store\n"
              "    from ..latency import table\n"
              "    import pipeline.litert.timing\n")
    found = list(direction_violations("pipeline.pruning.made_up", ast.parse(source), "m.py"))
    assert found == ["m.py:5: from pipeline.run import store  (pruning -> run)",
                     "m.py:6: from ..latency import table  (pruning -> latency)",
                     "m.py:7: import pipeline.litert.timing  (pruning -> litert)"]


@pytest.mark.parametrize("library, allowed", [("absl", ABSL_ALLOWED),
                                              ("ml_collections", ML_COLLECTIONS_ALLOWED)])
def test_command_line_libraries_stay_in_the_run_layer(library, allowed):
    violations = []
    for module, path, tree in parsed():
        if under(module, allowed):
            continue
        for line, target, text in imports(module, tree):
            if under(target, [library]):
                violations.append(f"{relative(path)}:{line}: {text}")
    assert not violations, (
        f"{library} imported outside {', '.join(allowed)}:\n" + "\n".join(violations))


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of the module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.add(id(body[0].value))
    return found


def keras_internals(tree: ast.AST):
    """Yields ``(line, what)`` for each use of a private tf_keras name in code."""
    skip = docstrings(tree)
    for node in ast.walk(tree):
        texts = []
        if isinstance(node, ast.Import):
            texts = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            texts = [node.module or ""]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr, ast.unparse(node)]
        elif isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in skip:
            texts = [node.value]
        for text in texts:
            for name in KERAS_INTERNALS:
                if text == name or text.startswith(name + ".") or (
                        isinstance(node, ast.Constant) and name in text):
                    yield node.lineno, name


def test_keras_internals_only_in_the_family_modules():
    violations = []
    for module, path, tree in parsed():
        if module in KERAS_OWNERS:
            continue
        for line, name in sorted(set(keras_internals(tree))):
            if (module, name) == LAYER_WALK_OWNER:
                continue
            violations.append(f"{relative(path)}:{line}: {name}")
    assert not violations, (
        f"Keras internals outside {KERAS_OWNERS} (move the access there and return plain "
        "data):\n" + "\n".join(violations))


@pytest.mark.parametrize("owner", KERAS_OWNERS)
def test_the_family_modules_are_still_recognised_as_the_owners(owner):
    """Guards the check above: each owner does use the internals it is allowed."""
    tree = ast.parse(MODULES[owner].read_text())
    assert {name for _, name in keras_internals(tree)} >= {"_keras_history", "_nodes_by_depth"}


def test_import_pipeline_loads_no_heavy_optional_library(record_property):
    python = ROOT / ".venv" / "bin" / "python"
    code = ("import json, sys, time\n"
            "start = time.perf_counter()\n"
            "import pipeline\n"
            "seconds = time.perf_counter() - start\n"
            "print(json.dumps({'seconds': seconds, 'modules': sorted(sys.modules)}))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python if python.exists() else sys.executable), "-c", code],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    record_property("import_pipeline_seconds", round(result["seconds"], 3))
    print(f"import pipeline: {result['seconds']:.2f} s, {len(result['modules'])} modules")
    loaded = sorted(m for m in result["modules"] if under(m, NOT_ON_IMPORT))
    assert not loaded, (
        f"`import pipeline` loads {', '.join(sorted({m.split('.')[0] for m in loaded}))} "
        f"({len(loaded)} modules, e.g. {loaded[0]}); import them inside the functions that "
        "need them, or keep them out of the modules pipeline/__init__.py reaches")


def test_no_module_is_over_the_size_limit():
    long = {relative(p): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_few_modules_at_the_top_of_the_package():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, (
        f"{len(top)} modules directly in pipeline/ (at most {MAX_TOP_MODULES}): {top}; move "
        "them into the package of their concern")


def test_test_module_names_are_unique():
    """pytest imports test modules by basename (no __init__.py): two alike stop collection."""
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*_test.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {n: p for n, p in seen.items() if len(p) > 1} == {}

"""The house rules of docs/ARCHITECTURE.md, read from the code's own imports.

Imports go down the floors only (preprocessing < experiment, nn, features < inference <
evaluation < training < cli), there are no import cycles, modules stay small, no private
name crosses a module boundary, and only the CLI prints.
"""

import ast

import pytest

from conftest import REPO

#: Floor of every package (a module's floor is its package's; emonet/__init__ is the face).
FLOORS = {"preprocessing": 1, "emonet.experiment": 2, "emonet.nn": 2, "emonet.features": 2,
          "emonet.inference": 3, "emonet.evaluation": 4, "emonet.training": 5, "emonet.cli": 6, "emonet": 0}
#: Lines a module may have ("about 400").
MAX_LINES = 400


def modules():
    """{dotted module name: path} of the two packages."""
    found = {}
    for package in ("preprocessing", "emonet"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path, name):
    """(imported module, [imported names]) pairs of a module, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base, [alias.name for alias in node.names]


def floor_of(name):
    best = max((p for p in FLOORS if name == p or name.startswith(p + ".")), key=len, default=None)
    return None if best is None else FLOORS[best]


def project_edges():
    """(importer, imported module, names) for imports between our own modules."""
    known = modules()
    edges = []
    for name, path in known.items():
        for target, names in imports_of(path, name):
            # "from emonet.nn import fusion" imports the module emonet.nn.fusion
            targets = [f"{target}.{n}" for n in names if f"{target}.{n}" in known] or [target]
            for t in targets:
                if t in known or any(t.startswith(k + ".") for k in known):
                    edges.append((name, t, names))
    return edges


def test_imports_go_down_the_floors():
    upward = [(a, b) for a, b, _ in project_edges()
              if floor_of(a) and floor_of(b) and floor_of(b) > floor_of(a) and b != "emonet"]
    assert upward == []


def test_preprocessing_never_imports_emonet():
    assert [(a, b) for a, b, _ in project_edges() if a.startswith("preprocessing") and b.startswith("emonet")] == []


def test_no_import_cycles():
    graph = {}
    for a, b, _ in project_edges():
        if a != b and b not in (a.rpartition(".")[0],):  # a module importing its own package face is not a cycle
            graph.setdefault(a, set()).add(b)
    seen, on_stack, cycles = set(), [], []

    def visit(node):
        if node in on_stack:
            cycles.append(on_stack[on_stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        on_stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        on_stack.pop()

    for node in sorted(graph):
        visit(node)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_size(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines (split it along its jobs)"


def test_no_private_name_crosses_a_module():
    crossing = [(a, b, n) for a, b, names in project_edges() for n in names
                if n.startswith("_") and not n.startswith("__")]
    assert crossing == []


def test_only_the_cli_prints():
    printing = []
    for name, path in modules().items():
        if name == "emonet.cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{name}:{node.lineno}")
    assert printing == []


def test_the_reader_sees_the_imports():
    """The checks above are only as good as the import reader: it must see known arrows."""
    edges = {(a, b) for a, b, _ in project_edges()}
    assert ("emonet.training.trainer", "emonet.evaluation.evaluate") in edges
    assert ("emonet.nn.io", "emonet.nn.layers") in edges
    assert floor_of("emonet.training.trainer") > floor_of("emonet.evaluation.metrics") > floor_of("emonet.nn.io")

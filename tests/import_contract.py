"""The import contracts of the repository, read from the source with ``ast`` (nothing is
imported, so a violation is found even in code no test runs):

* **layers**: each package of ``inn`` imports only the packages its layer may use
  (:data:`LAYERS`, the layering of shared/DESIGN.md);
* **no cycles** between the modules of ``inn``;
* **public API only** from the experiments (``innlab``) and the benchmarks: the packages of
  ``inn`` and the names listed in their ``__all__``, never a module or name not exported there;
* the library never imports the experiments, the benchmarks or the tests.

Imports inside functions count; imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FOUNDATION = {"errors", "outputs", "module_sizes", "data"}
"""Modules every layer may use: errors, model outputs as tensors, size attributes of modules,
calibration data as batches."""

# package (or top-level module) of inn -> the packages it may import, besides itself and the
# foundation; DESIGN.md's layers, with budget below convert: IntegralModel.resize(budget=...)
# calls the budget, which knows the model only through its public accessors.
LAYERS: dict[str, set[str]] = {
    "numerics": set(),
    "continuous": {"numerics"},
    "layers": {"numerics", "continuous"},
    "graph": {"numerics", "continuous"},
    "permute": {"numerics", "continuous", "graph"},
    "budget": {"numerics", "continuous", "layers", "graph"},
    "convert": {"numerics", "continuous", "layers", "graph", "permute", "budget"},
    "loop": {"numerics", "continuous", "layers", "graph", "convert"},
    "recover": {"numerics", "continuous", "layers", "graph", "convert", "budget", "loop"},
    "train": {"numerics", "continuous", "layers", "graph", "convert", "budget", "loop", "recover"},
    "pruning": {"numerics", "continuous", "layers", "graph", "permute", "convert", "budget",
              "loop", "recover"},
    "cli": {"numerics", "continuous", "layers", "graph", "permute", "convert", "budget", "loop",
            "recover", "train", "pruning"},
}  # fmt: skip
OUTSIDE = ("innlab", "benchmarks", "tests", "examples")
"""Top-level packages beside the library, which the library must never import."""


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.message}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports(path: Path, module: str) -> Iterator[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for each runtime import of a file."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                yield base, alias.name, node.lineno


def _sources(root: Path, package: str) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def exported(library_root: Path) -> dict[str, set[str]]:
    """``{package: names in its __all__}`` for ``inn`` and every package of it."""
    out = {}
    for init in (library_root / "inn").rglob("__init__.py"):
        names: set[str] = set()
        for node in ast.parse(init.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                names = {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
        out[module_name(init, library_root)] = names
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def check_library(library_root: Path) -> list[Violation]:
    """Layers, no cycles, and nothing from beside the library, for ``library_root/inn``."""
    sources = _sources(library_root, "inn")
    found: list[Violation] = []
    edges: dict[str, set[str]] = {m: set() for m in sources}
    for module, path in sources.items():
        layer = _layer(module)
        for target, name, line in imports(path, module):
            top = target.split(".")[0]
            if top in OUTSIDE:
                found.append(Violation(module, line, f"the library imports {target}"))
            if top != "inn":
                continue
            full = f"{target}.{name}" if name and f"{target}.{name}" in sources else target
            if full in sources:
                edges[module].add(full)
            used = _layer(full)
            if module == "inn" or used in ("", layer) or used in FOUNDATION:
                continue
            if layer in FOUNDATION or used not in LAYERS.get(layer, set()):
                found.append(Violation(module, line, f"layer {layer!r} imports {full} "
                                                     f"(layer {used!r})"))  # fmt: skip
    found += [Violation(c[0], 0, "import cycle among " + ", ".join(c)) for c in cycles(edges)]
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The modules of each import cycle (strongly connected components with more than one
    module, or a module that imports itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def check_public_use(root: Path, package: str, library_root: Path) -> list[Violation]:
    """Every use of ``inn`` by ``root/package`` goes through an exported name."""
    public = exported(library_root)
    found: list[Violation] = []
    for module, path in _sources(root, package).items():
        for target, name, line in imports(path, module):
            if target.split(".")[0] != "inn":
                continue
            if name is None:
                if target not in public:
                    found.append(Violation(module, line, f"imports {target}, not a package of "
                                                         "inn's public API"))  # fmt: skip
            elif target not in public:
                found.append(Violation(module, line, f"imports {name} from {target}, a module "
                                                     "that is not a public package"))  # fmt: skip
            elif name not in public[target] and f"{target}.{name}" not in public:
                found.append(Violation(module, line, f"imports {name} from {target}, which does "
                                                     "not export it (__all__)"))  # fmt: skip
        tree = ast.parse(path.read_text())
        for node in _runtime_nodes(tree):  # inn.x.y attribute chains after `import inn`
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "inn"
                and node.attr not in public["inn"] | {"__version__"}
            and f"inn.{node.attr}" not in public
            ):
                found.append(Violation(module, node.lineno, f"uses inn.{node.attr}, which inn "
                                                            "does not export"))  # fmt: skip
    return found

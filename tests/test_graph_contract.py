"""The graph package's structure: no import cycles, a leaf rule registry, and the written
contract (:class:`inn.graph.RuleContext`) that a user's channel rule relies on."""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

import inn
from inn.graph import RuleContext, analyse, trace
from inn.graph.groups import Analyser
from inn.graph.layout import Layout
from inn.graph.rules import module_rule, rule_for
from inn.graph.wrapped import Wrapped

GRAPH = Path(inn.__file__).parent / "graph"


# -- import graph -------------------------------------------------------------------------------
def module_imports(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules of package it imports}`` for every ``.py`` under ``root`` (the folder
    of ``package``), counting every import statement: in functions and ``TYPE_CHECKING`` too."""
    modules = {
        ".".join([package, *path.relative_to(root).with_suffix("").parts]).removesuffix(
            ".__init__"
        ): path
        for path in root.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package upwards
                    parts = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join(parts + ([base] if base else []))
                imported.add(base)
                imported.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a list of its nodes (first repeated last), or None."""
    state: dict[str, str] = {}  # node -> "open" (on the DFS path) or "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_checker_finds_an_import_inside_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import helper\n")
    (pkg / "b.py").write_text("def helper():\n    return 1\n")
    assert find_cycle(module_imports(pkg, "pkg")) is None
    (pkg / "b.py").write_text("def helper():\n    from pkg import a\n\n    return a\n")
    assert find_cycle(module_imports(pkg, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("def helper():\n    from . import a\n\n    return a\n")
    assert find_cycle(module_imports(pkg, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"]


def test_graph_package_has_no_import_cycle():
    graph = module_imports(GRAPH, "inn.graph")
    assert "inn.graph.rules_torch" in graph["inn.graph"]  # the one place that loads the rules
    assert find_cycle(graph) is None


def test_registry_is_a_leaf_and_rules_know_only_the_contract():
    graph = module_imports(GRAPH, "inn.graph")
    entries = {m for m in graph if m.startswith("inn.graph.rules_")}
    assert not graph["inn.graph.rules"] & (entries | {"inn.graph.groups"})
    for module in entries | {"inn.graph.rules", "inn.graph.wrapped"}:
        assert "inn.graph.groups" not in graph[module], module


def _contract_members() -> set[str]:
    return {name for name in vars(RuleContext) if not name.startswith("_")}


def test_rules_call_only_the_contract():
    """Every ``ctx.<member>`` the built-in rules use is in RuleContext, and the analyser
    implements every member of it."""
    members = _contract_members()
    assert {"input", "argument", "shape", "unknown", "record", "axes", "probed"} <= members
    used: dict[str, set[str]] = {}
    for path in [*GRAPH.glob("rules*.py"), GRAPH / "wrapped.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "ctx"
            ):
                used.setdefault(node.attr, set()).add(path.name)
    assert set(used) <= members, {m: used[m] for m in set(used) - members}
    gm = trace(nn.Sequential(nn.Conv2d(3, 4, 1)), torch.randn(1, 3, 4, 4))
    analyser = Analyser(gm)
    assert all(hasattr(analyser, m) for m in members), members - set(dir(analyser))


class _Scale(nn.Module):
    """A per-channel scale the tracer keeps whole once a rule is registered for it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


def test_user_rule_written_against_the_contract():
    calls = []

    def scale_rule(ctx: RuleContext, node: fx.Node, module: nn.Module | None) -> Any:
        calls.append(node.name)
        x = ctx.input(node)
        if not isinstance(x, Layout) or x.dim != 1 or ctx.shape(node) is None:
            return ctx.unknown(node, f"scale {node.target!r} over another axis")
        segments = x.segments
        spec = Wrapped({"gamma": {0: "out"}})
        ctx.record(str(node.target), "wrapped", {"in": segments, "out": segments}, wrapped=spec)
        return x

    inn.register_channel_rule(_Scale, scale_rule)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), _Scale(8), nn.ReLU(), nn.Conv2d(8, 5, 1)).eval()
    x = torch.randn(2, 3, 9, 9)
    analysis = analyse(trace(model, x))
    assert calls and "_Scale" not in analysis.probed
    assert analysis.modules["1"].kind == "wrapped"
    group = next(g for g in analysis.groups.values() if g.name == "0:out")
    assert group.resizable and group.full_size == 8

    imodel = inn.convert(model, x)
    torch.testing.assert_close(imodel(x), model(x), rtol=1e-4, atol=1e-4)
    imodel.resize(widths={"0:out": 5})
    small = imodel.export()
    assert small.get_submodule("1").gamma.shape == (5,)
    assert small(x).shape == (2, 5, 7, 7)


def test_builtin_entries_added_later_keep_a_users_rule():
    class Lazy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    def user(ctx: RuleContext, node: fx.Node, module: nn.Module | None) -> Any:
        return ctx.input(node)

    def builtin(ctx: RuleContext, node: fx.Node, module: nn.Module | None) -> Any:
        return None

    inn.register_channel_rule(Lazy, user)
    module_rule(Lazy)(builtin)  # what a library's lazy registration does at the first trace
    node = fx.symbolic_trace(nn.Sequential(nn.Identity())).graph.find_nodes(op="placeholder")[0]
    assert rule_for(node, Lazy()) == (user, True)


def test_import_does_not_load_torchvision():
    code = (
        "import sys, inn; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torchvision', 'timm')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

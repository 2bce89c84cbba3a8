"""The import graph: rooms import only lower rooms, and no module takes part in a circle.

Every ``import`` of every module under src/resnet3d counts, including imports inside
functions (a lazy import is still a dependency); only imports under ``if TYPE_CHECKING:``
are left out, because they never run. The room order is the one the README's architecture
map and ``resnet3d/__init__.py`` describe.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "resnet3d"

#: Rooms from the bottom up. A module may import its own room and the rooms listed before it.
ROOMS = (
    ("base", ("_version", "_utils", "_moved", "constants", "errors", "presets", "torch_files")),
    ("metrics", ("metrics",)),
    ("data", ("data",)),
    ("weights", ("weights",)),
    ("models", ("models",)),
    ("engine", ("engine",)),
    ("workflows", ("workflows",)),
    ("explain", ("explain",)),
    ("sweep", ("sweep",)),
    ("benchmarking", ("benchmarking",)),
    ("cli", ("cli", "__main__")),
    ("package", ("",)),
)
RANK = {top: rank for rank, (_, tops) in enumerate(ROOMS) for top in tops}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    assert top in RANK, f"{module}: not in any room; add it to ROOMS (and the README's map)"
    return RANK[top]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _exists(module: str) -> bool:
    path = SRC / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    """Module -> the resnet3d modules it imports (``from pkg import module`` names the module)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "resnet3d")
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "resnet3d":
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                targets.add(candidate if _exists(candidate) else source)
        targets.discard(name)
        graph[name] = targets
    return graph


GRAPH = import_graph()


def test_the_graph_is_read() -> None:
    # Guards the test itself: a parser that found nothing would pass everything below.
    assert len(GRAPH) > 60
    assert "resnet3d.models.resnet" in GRAPH["resnet3d.models"]
    assert any(
        t.startswith("resnet3d.data")
        for t in GRAPH["resnet3d.engine.train"] | GRAPH["resnet3d.workflows"]
    )


def test_every_module_is_in_a_room() -> None:
    for module in GRAPH:
        room_of(module)


def test_no_import_from_a_higher_room() -> None:
    upward = [
        f"{module} ({ROOMS[room_of(module)][0]}) imports {target} ({ROOMS[room_of(target)][0]})"
        for module, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if room_of(target) > room_of(module)
    ]
    assert not upward, "imports from a higher room:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_circles() -> None:
    # A package's __init__ that re-exports its own modules is not a circle by itself; a
    # module that imports its package's __init__ back is.
    cycles = _cycles(GRAPH)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checks_catch_a_violation() -> None:
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["resnet3d.models.config"].add("resnet3d.engine.train")
    assert room_of("resnet3d.engine.train") > room_of("resnet3d.models.config")
    graph["resnet3d.data.readers"].add("resnet3d.data.volumes")
    graph["resnet3d.data.volumes"].add("resnet3d.data.readers")
    assert any({"resnet3d.data.readers", "resnet3d.data.volumes"} <= set(c) for c in _cycles(graph))


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("resnet3d.data")))
def test_data_never_imports_torch_models(module: str) -> None:
    assert not {t for t in GRAPH[module] if t.startswith("resnet3d.models")}


def test_rooms_document_themselves() -> None:
    # The README's architecture map names every room.
    readme = (SRC.parent / "README.md").read_text()
    for _room, tops in ROOMS[1:-1]:
        for top in tops:
            if top != "__main__":
                assert f"{top}" in readme, f"README's architecture map does not mention {top}"


def test_graph_has_no_dangling_targets() -> None:
    missing = defaultdict(list)
    for module, targets in GRAPH.items():
        for target in targets:
            if target not in GRAPH:
                missing[module].append(target)
    assert not missing, f"imports of modules that do not exist: {dict(missing)}"

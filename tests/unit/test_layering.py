"""Which room may import which (setup.py's ROOMS, each the package fleetlog.<room>): the CLI is the
top application and may import every room; the agent and the collector share code through common
and never import each other; common imports no other room. Every import of every module counts,
also one inside a function or under TYPE_CHECKING."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]

# room -> the rooms it must not import
FORBIDDEN = {
    "common": {"agent", "collector", "cli"},
    "agent": {"collector", "cli"},
    "collector": {"agent", "cli"},
    "cli": set(),
}


def rooms() -> tuple[str, ...]:
    """ROOMS as setup.py names them, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ROOMS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("setup.py: no ROOMS")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import; relative imports stay inside their room."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from fleetlog import collector` names the room in the imported name
            if node.module == "fleetlog":
                found += [(node.lineno, f"fleetlog.{alias.name}") for alias in node.names]
    return found


def forbidden(room: str, tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, module, the room it belongs to) of each import `room` may not make."""
    found = []
    for line, module in imported_modules(tree):
        parts = module.split(".")
        if len(parts) > 1 and parts[0] == "fleetlog" and parts[1] in FORBIDDEN[room]:
            found.append((line, module, parts[1]))
    return sorted(found)


def test_every_room_has_a_rule():
    assert set(rooms()) == set(FORBIDDEN)


def test_no_room_imports_a_room_above_or_beside_it():
    found = []
    for room in FORBIDDEN:
        for path in sorted((ROOT / room).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found += [f"{path.relative_to(ROOT)}:{line} imports {module} ({room} may not import {other})"
                      for line, module, other in forbidden(room, tree)]
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_the_check_sees_every_form_of_import():
    tree = ast.parse("def f():\n    from fleetlog.collector.store import verify_store\n"
                     "from fleetlog import cli\nimport fleetlog.agent.main\nfrom fleetlog.common import chain\n"
                     "from . import sibling\n")
    assert forbidden("common", tree) == [(2, "fleetlog.collector.store", "collector"), (3, "fleetlog.cli", "cli"),
                                         (4, "fleetlog.agent.main", "agent")]
    assert forbidden("cli", tree) == []

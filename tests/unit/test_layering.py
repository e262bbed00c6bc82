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


# Inside the collector: the handlers (gRPC services, the auth gate, the console) reach the running
# collector through running.RunningCollector alone, never through the app that wires it or the rooms
# behind it; the store knows nothing of the collector but the filters it compiles and the forwarder
# cursor file it keeps.
HANDLERS = ("collector/service.py", "collector/gate.py", "collector/web")
BEHIND_THE_INTERFACE = {"app", "intake", "nodes", "own_events", "denials", "follow", "status", "evidence",
                        "checkpoint_timer", "grpc_server", "writer", "query", "admission"}
STORE_MAY_IMPORT = {"store", "filters", "forward.cursor"}


def collector_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, the part of fleetlog.collector named) of each import of the collector in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    prefix = "fleetlog.collector."
    return [(line, module[len(prefix):]) for line, module in imported_modules(tree) if module.startswith(prefix)]


def handler_files() -> list[pathlib.Path]:
    return sorted(p for name in HANDLERS for p in ([ROOT / name] if name.endswith(".py")
                                                     else (ROOT / name).rglob("*.py")))


def test_handlers_use_the_running_collector_only():
    found = [f"{path.relative_to(ROOT)}:{line} imports fleetlog.collector.{part}"
             for path in handler_files() for line, part in collector_imports(path)
             if part.split(".")[0] in BEHIND_THE_INTERFACE]
    assert not found, "handlers reaching behind RunningCollector:\n" + "\n".join(found)
    assert any(part == "running" for path in handler_files() for _, part in collector_imports(path))


def test_the_store_stands_below_the_collector():
    found = [f"{path.relative_to(ROOT)}:{line} imports fleetlog.collector.{part}"
             for path in sorted((ROOT / "collector" / "store").rglob("*.py"))
             for line, part in collector_imports(path)
             if not any(part == allowed or part.startswith(allowed + ".") for allowed in STORE_MAY_IMPORT)]
    assert not found, "the store importing the collector above it:\n" + "\n".join(found)

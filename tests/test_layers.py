"""The layers read one way: schemas -> providers, sinks, bus -> pipeline -> consumers -> cli.

Read from the source with `ast` (nothing imported), so a wrong import fails here, named, before
it can hide in a cycle. `pipeline/` holds decisions only: no command-line or terminal library,
and no Kafka client (its logs and topics are reached through `bus/`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "providers", "sinks", "bus", "pipeline", "consumers", "cli")
# What each package may import of the others. providers, sinks and bus sit side by side on
# schemas and need nothing of each other today.
MAY_IMPORT: dict[str, set[str]] = {
    "schemas": set(),
    "providers": {"schemas"},
    "sinks": {"schemas"},
    "bus": {"schemas"},
    "pipeline": {"schemas", "providers", "sinks", "bus"},
    "consumers": {"schemas", "providers", "sinks", "bus", "pipeline"},
    "cli": {"schemas", "providers", "sinks", "bus", "pipeline", "consumers"},
}
# `python -m pipeline` is named by the SPEC as the `frugal` command: that one file only
# hands over to cli.main.
ALLOWED_UPWARD = {("pipeline/__main__.py", "cli")}
COMMAND_LINE_LIBRARIES = {"argparse", "click", "typer", "rich", "getopt"}
KAFKA_CLIENTS = {"aiokafka", "faust", "kafka"}  # the pipeline reaches Kafka through bus/


def modules(package: str) -> Iterator[Path]:
    yield from sorted((REPO / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module a file imports by absolute name, including imports inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def wrong_imports(package: str) -> list[str]:
    found = []
    for path in modules(package):
        rel = path.relative_to(REPO).as_posix()
        for name in sorted(imported(path)):
            top = name.split(".")[0]
            if top not in PACKAGES or top == package or top in MAY_IMPORT[package]:
                continue
            if (rel, top) not in ALLOWED_UPWARD:
                found.append(f"{rel} imports {name}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_those_below_it(package: str) -> None:
    assert any(modules(package)), f"{package}/ not found: the check would pass on nothing"
    assert wrong_imports(package) == []


def test_pipeline_holds_no_command_line_module() -> None:
    found = [
        f"{path.relative_to(REPO).as_posix()} imports {name}"
        for path in modules("pipeline")
        for name in sorted(imported(path))
        if name.split(".")[0] in COMMAND_LINE_LIBRARIES
    ]
    assert found == []


def test_pipeline_holds_no_kafka_client() -> None:
    found = [
        f"{path.relative_to(REPO).as_posix()} imports {name}"
        for path in modules("pipeline")
        for name in sorted(imported(path))
        if name.split(".")[0] in KAFKA_CLIENTS
    ]
    assert found == []


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The checker itself: an upward import and a terminal library are both caught."""
    source = tmp_path / "wrong.py"
    source.write_text("def f() -> None:\n    from cli.main import main\n    import rich.console\n")
    assert imported(source) == {"cli.main", "rich.console"}

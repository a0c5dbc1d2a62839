"""The import rules of docs/architecture.md, checked on the source: what may import what.

Read from the AST (every import, including those inside functions and under TYPE_CHECKING), so a rule
is broken the moment a module names what it may not, whether or not that line has run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

ROOT = PROJECT_ROOT

# The shared kernel: modules at the top of `eventstore/` that every layer may use.
KERNEL = {
    "errors",
    "event_types",
    "identity",
    "json_paths",
    "models",
    "payload_json",
    "replay_wire",
    "settings",
    "storage_clients",
    "telemetry",
    "tenancy",
    "workflow_state",
}

# Each part of `eventstore/` and the parts it may import (besides itself and the kernel).
ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "store": set(),
    "query": {"store", "views"},
    "ingest": {"store"},
    "feed": {"store"},
    "http": {"store", "query", "ingest"},
    "services": {"store", "feed", "views", "replay", "alerts", "retention"},
    "views": {"store"},
    "replay": {"store", "views", "query"},
    "alerts": {"store", "views", "query", "ingest"},
    "retention": {"store", "views"},
    "client": set(),
    "console": {"store", "query", "feed", "http", "services", "views", "replay", "alerts", "retention"},
    "functions": {
        "store",
        "query",
        "ingest",
        "feed",
        "http",
        "services",
        "views",
        "replay",
        "alerts",
        "retention",
        "console",
    },
    "(package)": {"store"},
}


def _part(module: str) -> str:
    """The part of `eventstore` a module belongs to (its sub-package, or `kernel`)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "(package)"
    return "kernel" if parts[1] in KERNEL else parts[1]


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        names = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(names[:-1] if names[-1] == "__init__" else names), path


def _imports(path: Path, module: str) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            # `from eventstore.store import tenant_events` names a submodule, `from eventstore import query`
            # only a submodule (not the package's own namespace).
            submodules = [f"{name}.{alias.name}" for alias in node.names if f"{name}.{alias.name}" in MODULES]
            if len(submodules) < len(node.names):
                yield name
            yield from submodules


MODULES = {module for package in ("eventstore", "eventstore_local") for module, _ in _modules(package)}


def _all_imports(package: str) -> list[tuple[str, str]]:
    return [(module, name) for module, path in _modules(package) for name in _imports(path, module)]


PRODUCT = _all_imports("eventstore")
LOCAL_TOOLS = _all_imports("eventstore_local")
STORE_SUBMODULES = {module for module in MODULES if module.startswith("eventstore.store.")}


def test_the_rules_see_every_module() -> None:
    # A guard on the guard: if the walk found nothing, every rule below would pass vacuously.
    assert len({m for m, _ in PRODUCT}) > 40 and len({m for m, _ in LOCAL_TOOLS}) > 10
    assert "eventstore.store.append_events" in STORE_SUBMODULES


@pytest.mark.parametrize("imports", [PRODUCT, LOCAL_TOOLS], ids=["eventstore", "eventstore_local"])
def test_only_the_store_talks_to_postgresql(imports: list[tuple[str, str]]) -> None:
    offenders = sorted(
        f"{module} imports {name}"
        for module, name in imports
        if name.split(".")[0] in ("psycopg", "psycopg_pool") and not module.startswith("eventstore.store")
    )
    assert offenders == []


@pytest.mark.parametrize("imports", [PRODUCT, LOCAL_TOOLS], ids=["eventstore", "eventstore_local"])
def test_outside_the_store_only_its_front_door_is_imported(imports: list[tuple[str, str]]) -> None:
    offenders = sorted(
        f"{module} imports {name}"
        for module, name in imports
        if name in STORE_SUBMODULES and not module.startswith("eventstore.store")
    )
    assert offenders == []


def test_the_product_never_imports_the_local_tools() -> None:
    offenders = sorted(f"{module} imports {name}" for module, name in PRODUCT if name.startswith("eventstore_local"))
    assert offenders == []


def test_each_part_imports_only_what_the_layering_allows() -> None:
    offenders = []
    for module, name in PRODUCT:
        if name != "eventstore" and not name.startswith("eventstore."):
            continue
        source, target = _part(module), _part(name)
        if target in (source, "kernel"):
            continue
        if source not in ALLOWED:
            offenders.append(f"{module}: part {source!r} is not in the rules (docs/architecture.md)")
        elif target not in ALLOWED[source]:
            offenders.append(f"{module} ({source}) imports {name} ({target})")
    assert sorted(set(offenders)) == []


def test_only_the_settings_read_the_environment() -> None:
    offenders = []
    for module, path in _modules("eventstore"):
        if module == "eventstore.settings":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                offenders.append(f"{module}:{node.lineno} reads os.{node.attr}")
    assert offenders == []

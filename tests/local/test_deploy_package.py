"""The deployed zip (infra/package.sh, what infra/deploy.sh uploads) holds the app and the product package
only, and the app imports from it alone: none of the local tools, tests, bench or docs travel to Azure."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PROJECT_ROOT

ROOT = PROJECT_ROOT
TOP_LEVEL = {"host.json", "requirements.txt", "function_app.py"}
LEFT_OUT = ("eventstore_local", "tests", "bench", "docs", "scripts", "node_modules", "infra", ".venv", ".local")

# Runs with `-I -S`: no site-packages .pth files (so not the editable install, which would find the
# checkout's packages), no working directory on sys.path. Only the unzipped app and the venv's libraries.
# Every module of the zipped package is imported, so that imports made inside functions count too.
PROBE = """
import importlib, importlib.util, json, pkgutil, sys
app_dir, *libraries = sys.argv[1:]
sys.path[:0] = [app_dir]
sys.path.extend(libraries)
local_tools = importlib.util.find_spec("eventstore_local") is not None
import function_app
functions = sorted(f.get_function_name() for f in function_app.app.get_functions())
import eventstore
modules = [m.name for m in pkgutil.walk_packages(eventstore.__path__, "eventstore.")]
for name in modules:
    importlib.import_module(name)
loaded = {
    name: getattr(module, "__file__", None)
    for name, module in sys.modules.items()
    if name == "function_app" or name.split(".")[0].startswith("eventstore")
}
local_only = [name for name in %r if name in sys.modules]
print(json.dumps({"local_tools": local_tools, "functions": functions, "modules": modules, "loaded": loaded,
                  "local_only": local_only}))
"""

# The [local] extra's modules: the deployed app never needs them (requirements.txt does not install them).
LOCAL_ONLY_MODULES = ("pgserver", "croniter")


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("package") / "out" / "app.zip"
    result = subprocess.run(
        ["bash", str(ROOT / "infra" / "package.sh"), str(output)],
        cwd=tmp_path_factory.getbasetemp(),  # anywhere: the script finds the checkout itself
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(scope="module")
def unzipped(package: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The zip extracted, and what importing the app and every module of its package from there loaded."""
    app_dir = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(package) as archive:
        archive.extractall(app_dir)
    libraries = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE % (LOCAL_ONLY_MODULES,), str(app_dir), *libraries],
        cwd=app_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return app_dir, report


def _product_files() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "eventstore").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    }


def test_the_zip_holds_the_app_and_the_product_package_only(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
    assert len(names) == len(set(names))
    for name in names:
        assert name in TOP_LEVEL or name.startswith("eventstore/"), name
        assert "__pycache__" not in name and not name.endswith((".pyc", ".pyo")), name
        assert not name.startswith(tuple(f"{folder}/" for folder in LEFT_OUT)), name
    assert set(names) >= TOP_LEVEL
    assert set(names) - TOP_LEVEL == _product_files()  # all of eventstore/, the migrations' SQL included
    assert any(name.startswith("eventstore/store/migrations/") and name.endswith(".sql") for name in names)


def test_the_app_imports_from_the_zip_alone(unzipped: tuple[Path, dict[str, Any]]) -> None:
    app_dir, report = unzipped
    assert report["local_tools"] is False, "eventstore_local was importable in the probe"
    assert report["functions"], "function_app registered no functions"
    assert report["modules"], "no module of the eventstore package was found in the zip"
    assert "function_app" in report["loaded"]
    for name, file in report["loaded"].items():
        assert not name.startswith("eventstore_local"), name
        assert file is not None and Path(file).is_relative_to(app_dir), f"{name} loaded from {file}"


def test_the_app_needs_nothing_from_the_local_extra(unzipped: tuple[Path, dict[str, Any]]) -> None:
    _, report = unzipped
    assert report["local_only"] == []

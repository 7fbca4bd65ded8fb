"""The three installed sets: Heroku's runtime set, what `make run` adds, what development adds.

`requirements.txt` (Heroku), `requirements-local.txt` (`make run`) and `requirements-dev.txt` (`make
test` and the other targets) are locked by `make lock` from `pyproject.toml`.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """A distribution's normalised name (PEP 503) from a requirement or a distribution name."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement.strip(), maxsplit=1)[0]).lower()


def _pins(lock_file: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / lock_file).read_text().splitlines():
        if "==" in line and not line.startswith(("#", " ")):
            name, version = line.split("==")
            pins[_name(name)] = version.strip()
    return pins


RUNTIME, LOCAL, DEV = _pins("requirements.txt"), _pins("requirements-local.txt"), _pins("requirements-dev.txt")
PROJECT = _name(PYPROJECT["project"]["name"])
LOCAL_ONLY = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["local"]}
ALSO_AT_RUNTIME = {"aiohttp", "httpx"}  # the tests use them directly; ccxt and litestar need them anyway
DEV_ONLY = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]} - {PROJECT} - ALSO_AT_RUNTIME


def _imports_of_backend() -> tuple[set[str], set[str]]:
    """Top-level modules the backend imports as it loads, and those it imports inside functions only."""
    loaded, deferred = set(), set()
    for path in (ROOT / "backend").rglob("*.py"):
        tree = ast.parse(path.read_text())
        in_functions = {
            id(node)
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(function)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top != "backend" and top not in sys.stdlib_module_names:
                    (deferred if id(node) in in_functions else loaded).add(top)
    return loaded, deferred - loaded


def _distributions(modules: set[str]) -> set[str]:
    installed = packages_distributions()
    return {_name(distribution) for module in modules for distribution in installed[module]}


def test_heroku_installs_nothing_used_only_locally_or_in_development() -> None:
    assert not (LOCAL_ONLY | DEV_ONLY) & set(RUNTIME)


def test_make_run_installs_the_runtime_set_and_the_embedded_postgres_but_no_development_tool() -> None:
    assert set(RUNTIME) <= set(LOCAL)
    assert LOCAL_ONLY.issubset(LOCAL)
    assert not DEV_ONLY & set(LOCAL)


def test_a_package_has_the_same_version_in_every_set() -> None:
    assert {name: DEV[name] for name in LOCAL} == LOCAL
    assert {name: LOCAL[name] for name in RUNTIME} == RUNTIME


def test_the_backend_loads_with_the_runtime_set_and_needs_the_local_set_for_the_embedded_postgres() -> None:
    loaded, deferred = _imports_of_backend()

    assert _distributions(loaded) <= set(RUNTIME)
    assert _distributions(deferred) <= set(LOCAL)

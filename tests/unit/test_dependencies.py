"""The declared dependencies are exactly what the package imports, and the installed Airflow satisfies them.

Every third-party module imported anywhere in ``airflow_provider_aom`` (at module level or inside a
function) must come from a distribution in ``[project] dependencies``, and every distribution there
must be imported: nothing arrives only through Airflow's own dependency tree, nothing is declared
for nothing. The emulator imports the standard library only (plus the package's own stdlib-only
modules), so it runs wherever the package installs. This suite runs on Airflow 3.x and 2.11: the
lower bounds hold on both.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_provider_aom"
#: Modules of the package the emulator may import: they import the standard library only.
STDLIB_ONLY_MODULES = {"airflow_provider_aom.auth.signer", "airflow_provider_aom.endpoints"}
#: Imported only inside the functions the host application calls, from that application's own stack:
#: the wtforms widgets of ``connection_form.form_widgets()``, which only the Flask-AppBuilder UI of
#: Airflow 2.11 to 3.1 calls. Declaring them would install that UI's stack under Airflow 3.2+.
PROVIDED_BY_CALLER = {
    "flask_appbuilder": "airflow_provider_aom/connection_form.py",
    "flask_babel": "airflow_provider_aom/connection_form.py",
    "wtforms": "airflow_provider_aom/connection_form.py",
    # The AOM execution panel's app runs only inside Airflow >= 3.1's api-server, built on them.
    "fastapi": "airflow_provider_aom/plugins/app.py",
    "sqlalchemy": "airflow_provider_aom/plugins/app.py",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports are the package's own)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def distribution(module: str) -> str | None:
    """The distribution a third-party module comes from; None for the standard library and the package itself."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__" or top == "airflow_provider_aom":
        return None
    if module.startswith("airflow.providers.common.compat"):
        return "apache-airflow-providers-common-compat"
    if top == "airflow":
        return "apache-airflow"
    [name] = importlib.metadata.packages_distributions()[top]
    return normalize(name)


def declared() -> dict[str, Requirement]:
    """``[project] dependencies``, as the installed package's metadata states them (extras left out)."""
    requirements = map(Requirement, importlib.metadata.requires("airflow-provider-aom") or [])
    return {normalize(r.name): r for r in requirements if r.marker is None or "extra" not in str(r.marker)}


def test_declared_dependencies_are_exactly_the_imported_ones() -> None:
    used: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for module in imports(path):
            if PROVIDED_BY_CALLER.get(module.split(".")[0]) == str(path.relative_to(ROOT)):
                continue
            dist = distribution(module)
            if dist is not None:
                used.setdefault(dist, set()).add(str(path.relative_to(ROOT)))
    missing = {dist: sorted(where) for dist, where in used.items() if dist not in declared()}
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"
    unused = sorted(set(declared()) - set(used))
    assert not unused, f"declared but never imported: {unused}"


def test_installed_versions_satisfy_the_declared_lower_bounds() -> None:
    for name, requirement in declared().items():
        installed = Version(importlib.metadata.version(name))
        assert requirement.specifier.contains(installed, prereleases=True), f"{name} {installed} vs {requirement}"


def test_emulator_imports_the_standard_library_only() -> None:
    offenders: dict[str, list[str]] = {}
    for path in [*(PACKAGE / "emulator").rglob("*.py"), PACKAGE / "endpoints.py", PACKAGE / "auth" / "signer.py"]:
        for module in imports(path):
            own = module.startswith("airflow_provider_aom.")
            if (
                own and not module.startswith("airflow_provider_aom.emulator") and module not in STDLIB_ONLY_MODULES
            ) or (not own and distribution(module) is not None):
                offenders.setdefault(str(path.relative_to(ROOT)), []).append(module)
    assert not offenders, offenders

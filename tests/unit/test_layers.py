"""The package's layers read top-down: no module imports one of a higher layer (docs/architecture.md).

Every import counts, wherever it is written: at the top, inside a function (imported when a task
runs) or under ``TYPE_CHECKING``; a lower layer that names a higher one, even only for a type, is
the coupling this test exists to stop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_aom"
ROOT = "airflow_provider_aom"

#: Top to bottom; a module may import its own layer and those below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("operators", "sensors", "triggers", "links", "get_provider_info", "plugins"),
    ("hooks",),
    ("wait", "submit", "node_ops", "watch"),
    ("call_flow", "auth_flow", "auth.tokens", "config", "connection_form", "retry"),
    ("api", "execution", "execution_list", "endpoints", "auth.signer"),
    ("transport",),
    ("wire",),
    # The package and its sub-packages' __init__ modules import nothing.
    ("vocabulary", "exceptions", "escaping", "", "auth"),
)
#: The emulator stands beside the client: it shares the paths, the signature and the vocabulary, nothing else.
EMULATOR_MAY_IMPORT = ("emulator", "endpoints", "auth.signer", "vocabulary", "exceptions", "escaping", "")


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _under(module: str, prefix: str) -> bool:
    if not prefix:
        return module == ""
    return module == prefix or module.startswith(prefix + ".")


def _layer(module: str) -> int:
    """The index of the most specific layer entry that holds ``module``."""
    best: tuple[int, int] | None = None
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if _under(module, prefix) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    if best is None:
        raise AssertionError(f"{module or ROOT} is in no layer: add it to LAYERS (and to docs/architecture.md).")
    return best[0]


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, relative to the package (``""`` is the package itself)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name == ROOT or name.startswith(ROOT + "."):
                found.add(name[len(ROOT) + 1 :])
    # `from airflow_provider_aom.x import Y` adds "x.Y": keep only names that are modules or packages.
    return {name for name in found if name == "" or _is_module(name)}


def _is_module(name: str) -> bool:
    base = PACKAGE.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[_name(p) or ROOT for p in MODULES])
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    module = _name(path)
    imported = _imports(path)
    if module.startswith("emulator"):
        outside = sorted(i for i in imported if not any(_under(i, allowed) for allowed in EMULATOR_MAY_IMPORT))
        assert not outside, f"the emulator imports client machinery: {outside}"
        return
    own = _layer(module)
    upward = sorted(i for i in imported if _layer(i) < own)
    assert not upward, f"{module} (layer {own}) imports a higher layer: {upward}"


def test_the_layer_table_sees_upward_imports() -> None:
    """The rule itself: transport naming the API (it did before the layers were turned the right way up) fails."""
    assert _layer("transport.pools") > _layer("api") > _layer("hooks.aom")
    assert _under("transport.pools", "transport") and not _under("transports", "transport")

"""scripts/cluster.py finds the sbin tools it runs even when the shell's PATH lacks the sbin folders."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster.py"


def load_cluster(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("cluster_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_runuser_is_found_in_an_sbin_folder_missing_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = load_cluster(monkeypatch)
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    tool = sbin / "runuser"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(cluster, "SBIN_DIRS", (str(sbin),))
    assert cluster.system_tool("runuser") == str(tool)
    if os.geteuid() == 0:
        monkeypatch.setattr(cluster, "user_exists", lambda name: True)
        assert cluster.as_user("postgres", ["initdb"])[:2] == [str(tool), "-u"]
    monkeypatch.setattr(cluster, "SBIN_DIRS", ())
    with pytest.raises(cluster.ClusterError, match="runuser was not found"):
        cluster.system_tool("runuser")

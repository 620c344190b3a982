"""What the `recommender` wheel ships: the service, never the research lab."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_holds_the_service_and_its_data_but_no_lab_module(tmp_path: Path) -> None:
    """Built from a copy of the tree (setuptools writes build/ and egg-info beside the sources),
    without build isolation: the development environment already has setuptools and wheel."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("recommender", "lab"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("lab/") or n.startswith("tests/")], "the lab stays out"
    modules = {n for n in names if n.endswith(".py")}
    assert "recommender/service/simulate.py" in modules and "recommender/cli.py" in modules
    assert any(n.startswith("recommender/planner/locales/") and n.endswith(".po") for n in names)
    assert "recommender/data/demo_catalog.json" in names
    # the store's migrations run from the installed package
    assert {
        "recommender/storage/migrations/env.py",
        "recommender/storage/migrations/versions/s0001_schema_1.py",
    } <= modules

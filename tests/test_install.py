"""A normal (non-editable) install works outside the checkout: the wheel carries the native
harness sources and the built-in suites as package data, so `devprof-c` builds its harness from
the installed package. The install reuses this interpreter's dependencies (``--no-deps
--no-build-isolation``), so nothing is downloaded."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_non_editable_install_profiles_devprof_c_outside_the_checkout(tmp_path: Path) -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    files = subprocess.run(["git", "ls-files", "-z", "pyproject.toml", "README.md", "LICENSE", "devprof",
                            "predictors", "harness_android"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ and *.egg-info there
    for name in filter(None, files):
        rel = name.decode()
        if (ROOT / rel).is_symlink():  # devprof/harness_android -> ../harness_android
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(ROOT / rel), src / rel)
            continue
        if not (ROOT / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True, capture_output=True, timeout=300)
    assert (site / "devprof" / "harness_android" / "harness.c").is_file()
    assert (site / "devprof" / "suites" / "builtin" / "smoke.toml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed copy first, not the checkout
    where = subprocess.run([sys.executable, "-c", "import devprof, predictors; print(devprof.__file__, predictors.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in where and str(site) in where, where
    r = subprocess.run([sys.executable, str(site / "bin" / "devprof"), "profile", "-r", "devprof-c", "--suite", "smoke",
                        "--where", "op=fc", "--quick", "--out", "ds"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "4 measured, 0 refused" in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]

"""streamproof as another project uses it: built into a wheel, installed into a virtual
environment of its own outside this repository, run with the `streamproof` command, and
invisible to the other pytest sessions of that environment.

The wheel is installed without its dependencies, which come from the environment running
these tests (a `.pth` file names its site-packages): the same versions, and no download.
streamproof itself is seen only as installed, since that environment's own editable
install of it is not read (`.pth` files are read in site folders only).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from (pyproject.toml's packages, their data, the readme).
SOURCES = ["pyproject.toml", "README.md", "streamproof", "harness", "fake_providers", "proxy"]
SOURCES += ["suites", "docs"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the wheel of this repository installed: its bin folder."""
    where = tmp_path_factory.mktemp("install")
    # Built from a copy: pip builds in the source tree, whose build/ it would reuse and leave.
    source = where / "source"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, source / name, symlinks=True, ignore=IGNORED)
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, source / name, follow_symlinks=False)
    wheels = where / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("streamproof-*.whl")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    return venv / "bin"


def test_install_claims_one_top_level_name(installed: Path, tmp_path: Path) -> None:
    python = installed / "python"
    listed = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata as m; print('\\n'.join(map(str, "
            "m.distribution('streamproof').files)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not this repository, whose folders `python -c` would see
    ).stdout.split()
    tops = {name.split("/")[0] for name in listed if not name.startswith("../")}
    assert tops == {"streamproof", f"streamproof-{_version(python, tmp_path)}.dist-info"}
    assert "streamproof/suites/test_recovery.py" in listed
    assert "streamproof/proxy/static/dashboard.js" in listed


def test_install_streamproof_command_judges_a_proxy_from_another_folder(
    installed: Path, tmp_path: Path
) -> None:
    project = tmp_path / "my-proxy"
    project.mkdir()
    shutil.copy(ROOT / "examples" / "relay.py", project / "relay.py")
    run = subprocess.run(
        [
            installed / "streamproof",
            "--target-cmd",
            "{python} relay.py --upstream {upstream} --port {port}",  # relative: its folder
            "--target-name",
            "my relay",
            "--case",
            "1.1",
            "--case",
            "5.7",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert run.returncode == 1, run.stdout + run.stderr  # 5.7: a truncation dressed up
    assert "FAIL · 1 — a client is harmed" in run.stdout
    assert "5.7" in run.stdout
    results = json.loads((project / "reports" / "results.json").read_text())
    verdicts = {case["id"]: case["verdict"] for case in results["cases"]}
    assert verdicts == {"1.1": "PASS", "5.7": "FAIL"}
    assert (project / "reports" / "targets" / "my-relay" / "cases" / "5.7.html").is_file()
    assert not (project / ".pytest_cache").exists()


def test_install_other_pytest_sessions_see_nothing_of_streamproof(
    installed: Path, tmp_path: Path
) -> None:
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    assert True\n")
    run = subprocess.run(
        [installed / "python", "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "streamproof" not in run.stdout.lower()
    helped = subprocess.run(
        [installed / "python", "-m", "pytest", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "--target-cmd" not in helped.stdout
    assert "streamproof" not in helped.stdout.lower()


def _version(python: Path, cwd: Path) -> str:
    return subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('streamproof'))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    ).stdout.strip()

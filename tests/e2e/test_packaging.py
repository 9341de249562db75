"""The package as a user installs it: a wheel built from the checkout, installed into a
fresh virtual environment, used from an empty working directory. Its data goes under
that directory's ``var/``, and nothing is written into site-packages.

The fresh environment gets only the wheel; its dependencies are borrowed, read-only,
from the test run's own environment (a ``.pth`` line), so the test needs no network
for them and cannot see the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_file()
    }


def test_the_wheel_installs_runs_from_any_directory_and_writes_nothing_into_site_packages(
    tmp_path,
):
    # Given a wheel built from a copy of the checkout (the build leaves build/ behind)
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = wheels.glob("membership_lifecycle-*.whl")
    # And a fresh virtual environment with only that wheel installed
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site_packages / "borrowed-dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-compile",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    installed = _files(site_packages)
    # When it is used from an empty directory, with no settings at all
    workdir = tmp_path / "instance"
    workdir.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "PYTHON"))
    }
    env["PATH"] = f"{environment / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["SECRET_KEY"] = "packaging-test-session-key-long-enough-0123456789"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=True
        )

    version = run(str(environment / "bin" / "lifecycle"), "--version")
    upgraded = run(str(environment / "bin" / "lifecycle"), "db", "upgrade")
    served = run(
        str(python),
        "-c",
        "import web, settings; app = web.create_app(); c = app.test_client(); "
        "print(web.__file__); "
        "print(c.get('/healthz').status_code, c.get('/docs').status_code, "
        "c.get('/docs/assets/swagger-ui-bundle.js').status_code, "
        "c.get('/openapi.json').status_code)",
    )
    # Then it says its version, and the database is under ./var of that directory
    assert version.stdout.strip() == "lifecycle, version 0.1.0"
    assert "database at revision" in upgraded.stderr
    assert (workdir / "var" / "lifecycle.db").is_file()
    # And the app comes from the installed wheel, and answers, its docs included
    module, statuses = served.stdout.strip().splitlines()[-2:]
    assert Path(module).is_relative_to(site_packages)
    assert statuses == "200 200 200 200"
    # And nothing was added to or changed in site-packages
    assert _files(site_packages) == installed

"""A plugin built as a wheel and installed like a user would: its shipped task file travels with it.

The plugin is written into a temporary folder, built with ``pip wheel`` (offline, no build
isolation) and installed with ``pip install --target``; a fresh interpreter with only that folder
added to its path finds the plugin's provider and task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = '''
from pathlib import Path

from mmbench import ConfigError, DatasetProvider, RawData, hookimpl


class Counting(DatasetProvider):
    name = "wheel_counting"
    description = "rows 0..n-1 as one-number embeddings; label = parity"
    options = {"n_samples": "rows (default 40)"}

    def load(self, context):
        import datasets

        n = self.settings.get("n_samples", 40)
        if isinstance(n, bool) or not isinstance(n, int) or not 20 <= n <= 10_000:
            raise ConfigError(f"wheel_counting: option 'n_samples' must be an integer in 20..10000, got {n!r}")
        rows = {"x": [[float(i), float(i % 2)] for i in range(n)], "label": [i % 2 for i in range(n)]}
        return RawData(splits={"all": datasets.Dataset.from_dict(rows)}, modalities={"x": "embedding"})


@hookimpl
def mmbench_datasets():
    return [Counting]


@hookimpl
def mmbench_tasks():
    return [Path(__file__).parent / "tasks" / "wheel-counting.yaml"]
'''

TASK = """\
name: wheel-counting
description: a task shipped inside a wheel
data: {provider: wheel_counting, options: {n_samples: 40}}
label: label
"""

CHECK = """\
from mmbench.registry import load_registry
from mmbench.tasks.files import builtin_tasks
registry = load_registry()
print(registry.owner("dataset", "wheel_counting"), builtin_tasks(registry)["wheel-counting"].provider)
"""


def write_plugin(root: Path) -> Path:
    source = root / "src" / "mmbench_wheeltest"
    (source / "tasks").mkdir(parents=True)
    (source / "__init__.py").write_text(PLUGIN)
    (source / "tasks" / "wheel-counting.yaml").write_text(TASK)
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mmbench-wheeltest"
        version = "0.3.0"

        [project.entry-points.mmbench]
        wheeltest = "mmbench_wheeltest"

        [tool.setuptools]
        package-dir = { "" = "src" }
        packages = ["mmbench_wheeltest"]

        [tool.setuptools.package-data]
        mmbench_wheeltest = ["tasks/*.yaml"]
        """))
    return root


def build_and_install(project: Path, target: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    wheels = project / "dist"
    subprocess.run([*pip, "wheel", "--no-build-isolation", "--no-deps", "--no-index", "-w", str(wheels), str(project)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)


def run_check(target: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=300)


def test_a_wheel_installed_with_target_ships_its_task(tmp_path):
    """(Without package data the wheel lacks the file: tests/test_plugin_author_errors.py checks that message.)"""
    project = write_plugin(tmp_path / "project")
    target = tmp_path / "target"
    build_and_install(project, target)
    result = run_check(target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wheeltest", "wheel_counting"]

"""Plugins use only the public API: ``mmbench``, ``mmbench.nn``, ``mmbench.hf``, ``mmbench.testing``.

Built-in plugins register exactly as a third-party plugin does, so they must not reach into
private core modules (which may move) nor into each other (each can be disabled on its own).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"mmbench", "mmbench.nn", "mmbench.hf", "mmbench.testing"}
BUILTIN_PLUGINS = {path.name for path in (ROOT / "plugins").iterdir() if (path / "__init__.py").is_file()}


def _sources() -> list[Path]:
    files = [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]
    return sorted(f for f in files if not {"build", "dist"} & set(f.relative_to(ROOT).parts))


def _own_package(path: Path) -> str:
    """The top-level package a file belongs to (``mmbench_text`` for ``plugins/mmbench_text/x.py``)."""
    parts = path.relative_to(ROOT).parts
    if parts[0] == "plugins":
        return parts[1]
    return parts[parts.index("src") + 1] if "src" in parts else parts[-1]


def forbidden_imports(source: str, own: str) -> list[str]:
    """``line: module`` for every import in ``source`` (of package ``own``) of a private core
    module or of another built-in plugin."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top == "mmbench" and module not in PUBLIC:
                problems.append(f"{node.lineno}: {module} (private core module)")
            elif top in BUILTIN_PLUGINS and top != own:
                problems.append(f"{node.lineno}: {module} (another built-in plugin)")
    return problems


def test_the_scan_sees_every_built_in_plugin_and_the_example():
    owners = {_own_package(path) for path in _sources()}
    assert BUILTIN_PLUGINS | {"mmbench_example"} <= owners


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path):
    assert forbidden_imports(path.read_text(), _own_package(path)) == [], f"{path.relative_to(ROOT)} imports outside the public API"


def test_the_check_catches_private_and_cross_plugin_imports():
    source = (
        "from mmbench.errors import ConfigError\nimport mmbench_vision.cnn\nfrom mmbench_video import frames\n"
        "from mmbench.nn import mlp\nimport numpy\n\ndef late():\n    from mmbench.data.media import read_image\n"
    )
    assert forbidden_imports(source, "mmbench_video") == [
        "1: mmbench.errors (private core module)",
        "2: mmbench_vision.cnn (another built-in plugin)",
        "8: mmbench.data.media (private core module)",
    ]

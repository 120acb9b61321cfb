"""The shape of the package: no import cycles (function-local and TYPE_CHECKING imports included), small modules.

The import contracts themselves (layers, forbidden imports) are checked by ``lint-imports`` in
tox (``pyproject.toml [tool.importlinter]``); these tests pin what a contract cannot express.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

import mmbench

PACKAGE = Path(mmbench.__file__).parent
MAX_LINES = 400


def import_graph(package: str) -> grimp.ImportGraph:
    """Every import of ``package``: function-local ones and annotations under TYPE_CHECKING are in (a
    cycle through an annotation still ties two modules together, and breaks ``typing.get_type_hints``)."""
    return grimp.build_graph(package, exclude_type_checking_imports=False, cache_dir=None)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return import_graph("mmbench")


def test_no_import_cycle_between_modules(graph):
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.startswith(importer + "."):
                continue  # a package's __init__ re-exporting its own submodule
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_over_the_line_limit():
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_a_cycle_is_found_when_there_is_one(tmp_path, monkeypatch):
    """The cycle check sees imports made inside functions (the kind that hid the old cycles)."""
    package = tmp_path / "cyclepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclepkg.b import g\n\ndef f():\n    return g()\n")
    (package / "b.py").write_text("def g():\n    from cyclepkg.a import f\n    return f\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = import_graph("cyclepkg")
    assert found.find_shortest_chain(importer="cyclepkg.b", imported="cyclepkg.a") == ("cyclepkg.b", "cyclepkg.a")
    assert found.find_shortest_chain(importer="cyclepkg.a", imported="cyclepkg.b") is not None


def test_a_cycle_through_a_type_checking_import_is_found(tmp_path, monkeypatch):
    """The graph the cycle check uses keeps imports made only for annotations."""
    package = tmp_path / "typecyclepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from typecyclepkg.b import g\n")
    (package / "b.py").write_text(
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
        "    from typecyclepkg.a import A\n\ndef g(x: A) -> None:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = import_graph("typecyclepkg")
    assert found.find_shortest_chain(importer="typecyclepkg.b", imported="typecyclepkg.a") == ("typecyclepkg.b", "typecyclepkg.a")

"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists its public names and the submodule that defines each; a name's module is
imported on first access. ``import mmbench.train`` therefore stays cheap (no torch) and a
package's ``__init__`` never creates an import cycle with its own submodules.

Example:
    >>> exports = lazy_exports("json", {"JSONDecoder": ".decoder"})
    >>> exports.__all__
    ['JSONDecoder']
    >>> exports.__getattr__("JSONDecoder").__name__
    'JSONDecoder'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LazyExports:
    """The ``__all__``, ``__getattr__`` and ``__dir__`` a package module assigns."""

    __all__: list[str]
    __getattr__: Callable[[str], Any]
    __dir__: Callable[[], list[str]]


def lazy_exports(package: str, names: Mapping[str, str]) -> LazyExports:
    """Exports for ``package``: ``names`` maps a public name to its (relative) module."""

    def get(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        module = sys.modules.get(package)
        if module is not None:
            setattr(module, name, value)
        return value

    public = sorted(names)
    return LazyExports(public, get, lambda: public)

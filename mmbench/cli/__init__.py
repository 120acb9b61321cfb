"""The command line: the typer app, one module per command group, console helpers."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(__name__, {"app": ".app", "main": ".app"})
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__

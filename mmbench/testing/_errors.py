"""The failure type of the conformance kit and the helpers that raise it (see :mod:`mmbench.testing.kit`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mmbench.errors import one_line


class ConformanceError(AssertionError):
    """A component broke a property of the plugin contract.

    Attributes:
        component: the component's name.
        check: the check that failed (``check_gradients``, ...).
    """

    def __init__(self, message: str, *, component: str = "", check: str = "") -> None:
        super().__init__(message)
        self.component = component
        self.check = check


def _fail(name: str, component: type, check: str, problem: str, fix: str) -> None:
    kind = getattr(component, "kind", "component")
    raise ConformanceError(
        f"{kind} '{name}' fails {check}: {problem}. Fix: {fix} "
        f"(or, if it cannot apply, declare expected_failures = {{'{check}': '<reason>'}} on {component.__qualname__})",
        component=name,
        check=check,
    )


@contextmanager
def _calling(name: str, component: type, check: str, action: str, fix: str) -> Iterator[None]:
    """Turn any exception raised by the component into a :class:`ConformanceError`."""
    try:
        yield
    except ConformanceError:
        raise
    except Exception as error:  # noqa: BLE001 - the component's failure is the finding
        message = one_line(error, 300)
        _fail(name, component, check, f"{action} raised {type(error).__name__}: {message}", fix)

"""Conformance kit for plugin authors, in the manner of scikit-learn's ``estimator_checks``.

Each property is one function ``check_<property>(name, component)`` that raises
:class:`ConformanceError` (an ``AssertionError``) naming the component, the property and the fix.
``component`` is the class a plugin registers (an :class:`~mmbench.Encoder`,
:class:`~mmbench.Fusion` or :class:`~mmbench.DatasetProvider` subclass); ``name`` is how
messages call it (normally ``component.name``).

Three ways in:

* :func:`check_encoder`, :func:`check_fusion`, :func:`check_dataset` run every check that
  applies and raise one error listing every failure;
* :func:`parametrize_with_checks` makes one pytest test per (component, check), with readable
  ids such as ``embedding.mlp-check_gradients``;
* :func:`yield_checks` yields the checks that apply to a component, to run them your own way.

A check that cannot apply to a component (say, batches of one row for an encoder that needs
pairs) is declared on the class with a reason: ``expected_failures = {"check_batch_of_one":
"needs two rows"}``. :func:`check_encoder` skips it; :func:`parametrize_with_checks` marks it as a
strict ``xfail``, so the declaration is removed once the component is fixed.

The model checks live in :mod:`mmbench.testing.checks`, the dataset checks in
:mod:`mmbench.testing._datasets`. Inputs come from :mod:`mmbench.testing._inputs`: small seeded
batches in the documented formats, or the encoder's own preprocessor run on generated rows, or
the component's hooks
``example_info()`` / ``example_batch(info, batch_size, seed)`` (encoders) and
``example_task(directory)`` (dataset providers). See ``docs/plugins.md``.

Example:
    >>> from mmbench.testing.kit import check_fusion
    >>> from mmbench_fusion.basic import EarlyFusion  # doctest: +SKIP
    >>> check_fusion(EarlyFusion)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from mmbench.components import Encoder, Fusion
from mmbench.data.provider import DatasetProvider
from mmbench.errors import one_line
from mmbench.testing._datasets import check_load, check_prepare, check_unknown_option_rejected
from mmbench.testing._errors import ConformanceError
from mmbench.testing._inputs import example_batch, example_info, example_rows, fusion_inputs
from mmbench.testing.checks import (
    Check,
    check_batch_of_one,
    check_declaration,
    check_gradients,
    check_input_order,
    check_output_shapes,
    check_pooled_only,
    check_seeded_determinism,
    check_sequence_input,
    check_space_points_build,
    check_state_dict_round_trip,
    check_task_types,
    space_points,
)

__all__ = [
    "ConformanceError",
    "check_batch_of_one",
    "check_dataset",
    "check_declaration",
    "check_encoder",
    "check_fusion",
    "check_gradients",
    "check_input_order",
    "check_load",
    "check_output_shapes",
    "check_pooled_only",
    "check_prepare",
    "check_seeded_determinism",
    "check_sequence_input",
    "check_space_points_build",
    "check_state_dict_round_trip",
    "check_task_types",
    "check_unknown_option_rejected",
    "example_batch",
    "example_info",
    "example_rows",
    "fusion_inputs",
    "parametrize_with_checks",
    "space_points",
    "yield_checks",
]

# ------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------

_MODEL_CHECKS: tuple[Check, ...] = (
    check_declaration,
    check_space_points_build,
    check_output_shapes,
    check_batch_of_one,
    check_gradients,
    check_seeded_determinism,
    check_state_dict_round_trip,
)
_DATASET_CHECKS: tuple[Check, ...] = (check_declaration, check_unknown_option_rejected, check_load, check_prepare, check_seeded_determinism)


def yield_checks(component: type) -> Iterator[Check]:
    """The checks that apply to ``component``, by its kind and declared capabilities.

    Raises:
        TypeError: ``component`` is not an Encoder, Fusion or DatasetProvider subclass.
    """
    if not isinstance(component, type) or not issubclass(component, (Encoder, Fusion, DatasetProvider)):
        raise TypeError(f"{component!r} is not an mmbench Encoder, Fusion or DatasetProvider class")
    if issubclass(component, DatasetProvider):
        yield from _DATASET_CHECKS
        return
    yield from _MODEL_CHECKS
    if issubclass(component, Encoder) and component.modality == "embedding":
        yield check_sequence_input
    if issubclass(component, Fusion):
        yield check_input_order
        yield check_pooled_only
        yield check_task_types


def parametrize_with_checks(components: Iterable[type]) -> Any:
    """A ``pytest.mark.parametrize`` over every (component, check) pair, ids ``<name>-<check>``.

    Checks named in a component's ``expected_failures`` are strict ``xfail``: the test fails once
    the check passes, so stale declarations are noticed.

    Example:
        >>> from mmbench.testing.kit import parametrize_with_checks
        >>> @parametrize_with_checks([])  # your classes here
        ... def test_conformance(component, check):
        ...     check(component.name, component)
    """
    import pytest

    params = []
    for component in components:
        for check in yield_checks(component):
            reason = dict(component.expected_failures).get(check.__name__)
            marks = [pytest.mark.xfail(reason=reason, strict=True, raises=ConformanceError)] if reason else []
            params.append(pytest.param(component, check, id=f"{component.name}-{check.__name__}", marks=marks))
    return pytest.mark.parametrize(("component", "check"), params)


def _run_all(component: type, base: type) -> None:
    if not isinstance(component, type) or not issubclass(component, base):
        raise TypeError(f"{component!r} is not a subclass of mmbench.{base.__name__}")
    expected = dict(component.expected_failures)
    failures: dict[str, str] = {}
    for check in yield_checks(component):
        if check.__name__ in expected:
            continue
        try:
            check(component.name, component)
        except ConformanceError as error:
            failures[check.__name__] = str(error)
        except Exception as error:  # noqa: BLE001 - a broken component must be reported, not crash the kit
            failures[check.__name__] = f"{component.name}: {check.__name__}: raised {type(error).__name__}: {one_line(error, 200)}"
    if failures:
        raise ConformanceError("\n".join(failures.values()), component=component.name, check=",".join(failures))


def check_encoder(component: type[Encoder]) -> None:
    """Run every encoder check except declared expected failures.

    Raises:
        ConformanceError: one line per failed check.
    """
    _run_all(component, Encoder)


def check_fusion(component: type[Fusion]) -> None:
    """Run every fusion check except declared expected failures.

    Raises:
        ConformanceError: one line per failed check.
    """
    _run_all(component, Fusion)


def check_dataset(component: type[DatasetProvider]) -> None:
    """Run every dataset-provider check except declared expected failures.

    Raises:
        ConformanceError: one line per failed check.
    """
    _run_all(component, DatasetProvider)

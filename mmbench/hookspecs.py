"""The plugin contract: pluggy hook specifications of the ``mmbench`` project.

A plugin is a module (or object) with functions decorated by :data:`mmbench.hookimpl` whose
names match the specs below, registered under the ``mmbench`` entry-point group::

    [project.entry-points.mmbench]
    my_plugin = "my_package.plugin"

Importing this module is cheap: component types are only named for type checkers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mmbench.components import Encoder, Fusion
    from mmbench.data.provider import DatasetProvider
    from mmbench.modalities import ModalityKind

PROJECT = "mmbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------------
# Registration: called once when the registry loads plugins
# --------------------------------------------------------------------------------------------


@hookspec
def mmbench_modalities() -> list[type[ModalityKind]]:
    """Return the modality-kind classes this plugin provides.

    Called once at start-up, before the encoders are checked (an encoder's ``modality`` must be
    a registered kind). Each class must subclass :class:`mmbench.ModalityKind` and declare
    ``name`` (lowercase, no dot); it says how the kind is preprocessed by default, which file
    extensions mark it, and what example data the conformance kit uses.

    :return: a list of modality-kind classes (empty if none).
    """


@hookspec
def mmbench_encoders() -> list[type[Encoder]]:
    """Return the encoder classes this plugin provides.

    Called once at start-up, when the registry is built. Each class must subclass
    :class:`mmbench.Encoder` and declare ``name`` (``"<modality>.<short>"``), ``modality``
    and ``space``. Classes are not instantiated here.

    :return: a list of encoder classes (empty if none).
    """


@hookspec
def mmbench_fusions() -> list[type[Fusion]]:
    """Return the fusion classes this plugin provides.

    Called once at start-up. Each class must subclass :class:`mmbench.Fusion` and declare
    ``name`` and ``space``.

    :return: a list of fusion classes (empty if none).
    """


@hookspec
def mmbench_datasets() -> list[type[DatasetProvider]]:
    """Return the dataset-provider classes this plugin provides.

    Called once at start-up. Each class must subclass :class:`mmbench.DatasetProvider` and
    declare ``name`` and ``options``. A task file selects one with ``data.provider``.

    :return: a list of provider classes (empty if none).
    """


@hookspec
def mmbench_tasks() -> list[Path]:
    """Return the task files (YAML) this plugin ships.

    Called once at start-up. The task's ``name`` key is how users select it
    (``mmbench search NAME``); two plugins shipping one task name is an error.

    :return: a list of paths to task files.
    """


# --------------------------------------------------------------------------------------------
# Search events: called during ``mmbench search``; every implementation runs, results ignored
# --------------------------------------------------------------------------------------------


@hookspec
def mmbench_search_started(task: str, study_name: str, settings: dict[str, Any]) -> None:
    """Called once per worker before the first trial of a study runs.

    :param task: the task's name.
    :param study_name: the Optuna study's name.
    :param settings: the search settings (sampler, pruner, budget), credentials removed.
    """


@hookspec
def mmbench_trial_finished(task: str, study_name: str, trial_number: int, state: str, config: dict[str, Any], result: dict[str, Any]) -> None:
    """Called after every trial, whatever its outcome.

    Use it to add reporters, notifications or extra bookkeeping without forking the search.

    :param task: the task's name.
    :param study_name: the Optuna study's name.
    :param trial_number: the Optuna trial number.
    :param state: ``"COMPLETE"``, ``"PRUNED"`` or ``"FAIL"``.
    :param config: the resolved trial configuration (fusion, encoders, training).
    :param result: final metrics (``val_<metric>``, ``test_<metric>``, ...) and, for failed
        trials, ``{"reason": ...}``.
    """


@hookspec
def mmbench_search_finished(task: str, study_name: str, n_trials: int, best_value: float | None) -> None:
    """Called once per worker after its last trial.

    :param task: the task's name.
    :param study_name: the Optuna study's name.
    :param n_trials: trials this worker ran.
    :param best_value: the study's best validation value so far, or ``None``.
    """

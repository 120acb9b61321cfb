"""Named benchmark suites: the tasks whose ``suites:`` list names a suite (``mmbench search --suite``).

A task file opts into suites with a list (``suites: [core, synthetic]``); a suite is nothing
more than the set of tasks naming it, so a plugin adds a task to ``core`` by shipping a task
file, without touching any registry of suites. Before a suite starts, :func:`check_suite_data`
looks for every data file the suite's tasks name, so a missing ``--data-root`` is one clear
error naming the task and the path, not a failure twenty minutes into the run.
"""

from __future__ import annotations

import copy
import glob
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError, DataError, unknown_name_message

if TYPE_CHECKING:
    from mmbench.data.schema import Schema
    from mmbench.registry import Registry
    from mmbench.tasks.files import Task

__all__ = ["check_suite_data", "missing_data", "select_suite", "suite_tasks", "suites_of", "task_suites", "unimodal_task"]

#: characters that make an option value a regular expression rather than a file path
_REGEX_CHARS = re.compile(r"[\^$()|\\+{}]")
#: a file suffix such as ``.csv`` or ``.gz`` (not ``.5`` of a number)
_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}")
#: option names that never hold a path, whatever their value looks like
_NOT_PATHS = ("label", "group", "pattern", "regex", "mode")


def suites_of(task: Task) -> list[str]:
    """The suites a task belongs to (its ``suites:`` list; a single string counts as one).

    Raises:
        ConfigError: ``suites`` is neither a string nor a list of strings (names the task file).
    """
    value = task.raw.get("suites")
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise ConfigError(f"{task.path or task.name}: key 'suites' must be a list of suite names, got {value!r}")
    return [s.strip() for s in value]


def task_suites(tasks: Iterable[Task]) -> dict[str, list[str]]:
    """Suite name -> names of its tasks (sorted), over ``tasks``."""
    found: dict[str, list[str]] = {}
    for task in tasks:
        for suite in suites_of(task):
            found.setdefault(suite, []).append(task.name)
    return {suite: sorted(names) for suite, names in sorted(found.items())}


def suite_tasks(suite: str, registry: Registry) -> list[str]:
    """The built-in and plugin tasks that name ``suite`` in their ``suites:`` list, sorted.

    Raises:
        ConfigError: no task names that suite; the message lists the known suites.
    """
    from mmbench.tasks.files import builtin_tasks

    known = task_suites(builtin_tasks(registry).values())
    if suite not in known:
        raise ConfigError(f"--suite: {unknown_name_message('suite', suite, known)}")
    return known[suite]


def missing_data(task: Task, root: Path | None) -> list[str]:
    """The data paths a task's provider options name that do not exist (globs matching nothing).

    Providers are plugins, so the core cannot know their options; this looks at every string
    option value (nested ones too) that reads like a relative or absolute file path: it holds a
    ``/`` or ends in a file suffix, and is not a regular expression. Relative paths resolve as
    the providers resolve them (:meth:`mmbench.data.provider.LoadContext.resolve`): against the
    data root, else the task file's folder. A path the heuristic misses still fails in the
    provider, with the provider's own message.
    """
    from mmbench.data.provider import LoadContext

    context = LoadContext(data_root=root, task_dir=task.path.parent if task.path else None, seed=0)
    missing = []
    for value in _path_like(task.options):
        path = context.resolve(value)
        exists = bool(glob.glob(str(path))) if glob.has_magic(value) else path.exists()
        if not exists:
            missing.append(str(path))
    return missing


def check_suite_data(tasks: Iterable[Task], root: Path | None, *, suite: str) -> None:
    """Refuse to start a suite when a task's data is missing.

    Raises:
        DataError: one line naming each task with missing data and its first missing path.
    """
    problems = []
    for task in tasks:
        missing = missing_data(task, root)
        if missing:
            more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
            problems.append(f"task '{task.name}' needs {missing[0]}{more}")
    if problems:
        hint = "pass --data-root (or set $MMBENCH_DATA) to the folder holding them" if root is None else f"not found under --data-root {root}"
        raise DataError(f"suite '{suite}': {'; '.join(problems)}; {hint}")


def _path_like(options: Mapping[str, Any] | list[Any] | Any, key: str = "") -> list[str]:
    if isinstance(options, Mapping):
        return [p for k, v in options.items() if str(k) not in _NOT_PATHS for p in _path_like(v, str(k))]
    if isinstance(options, list):
        return [p for v in options for p in _path_like(v, key)]
    if not isinstance(options, str) or not options or _REGEX_CHARS.search(options) or any(c.isspace() for c in options):
        return []
    return [options] if "/" in options or _SUFFIX.fullmatch(Path(options).suffix) else []


def select_suite(suite: str, registry: Registry, root: Path | None) -> list[str]:
    """``mmbench search --suite``: the suite's task names, after checking their data is there.

    Raises:
        ConfigError: unknown suite (the message lists the known ones).
        DataError: a task's data files are missing (before any work starts).
    """
    from mmbench.tasks.files import builtin_tasks

    names = suite_tasks(suite, registry)
    tasks = builtin_tasks(registry)
    check_suite_data([tasks[name] for name in names], root, suite=suite)
    return names


def unimodal_task(task: Task, modality: str, schema: Schema) -> Task:
    """The task restricted to one modality: every other modality's columns are ``ignore``\\ d.

    Why a task and not a flag: the restricted task goes through the same provider, split seed
    and degradations, so its rows and its kept modality's data are those of the full task,
    and a unimodal *search* (not only a retrain of the best fused configuration, as
    ``--baselines`` does) gives the best unimodal model the same budget as each fusion.

    Args:
        task: the full task.
        modality: the modality to keep (a name in ``schema.modalities``).
        schema: the prepared full task's schema (which columns each modality reads).

    Returns:
        A task named ``<task>[<modality>]``; degradations and encoder restrictions of the
        dropped modalities are left out, and it belongs to no suite.

    Raises:
        ConfigError: ``modality`` is not one of the task's modalities.
    """
    from mmbench.tasks.files import parse_task

    if modality not in schema.modalities:
        raise ConfigError(f"task '{task.name}': {unknown_name_message('modality', modality, schema.modalities)}")
    kept = schema.modalities[modality]
    keys = {modality, kept.kind, *kept.columns, *(("numeric", "categorical") if kept.kind == "tabular" else ())}
    raw = copy.deepcopy(dict(task.raw))
    raw["name"] = f"{task.name}[{modality}]"
    raw.pop("suites", None)
    overrides = dict(raw.get("modalities") or {})
    for name, info in schema.modalities.items():
        if name != modality:
            overrides.update({column: "ignore" for column in info.columns})
    raw["modalities"] = overrides
    data = dict(raw["data"])
    if data.get("degrade"):
        data["degrade"] = {target: ops for target, ops in data["degrade"].items() if target in keys}
    raw["data"] = data
    search = dict(raw.get("search") or {})
    search.pop("fusions", None)  # interaction fusions need two modalities
    if search.get("encoders"):
        search["encoders"] = {target: names for target, names in search["encoders"].items() if target in keys}
    raw["search"] = search
    return parse_task(raw, source=task.path or task.name)

"""Task files: what data to load, which label and metric, and the default search budget.

A task file is YAML, read with ``yaml.safe_load`` only::

    name: synth-synergy
    description: Label is the XOR of two modalities' signs.
    data:
      provider: synthetic
      options: {n_samples: 2000, mode: synergy}
    label: label
    task: classification      # or multilabel / regression; inferred from the label when left out
    label_delimiter: null     # multilabel text cells: "action|drama" with "|"
    metric: accuracy          # default: accuracy / micro_f1 / rmse by task type
    modalities: {}            # column -> kind overrides
    split: {validation: 0.15, test: 0.15, seed: 0, group_column: null,
            allow_missing_classes: false, group_duplicates: null,
            folds: null, repeats: 1}   # folds: K-fold cross-validation outside test (no validation then)
    search: {n_trials: 12, max_epochs: 8, fusions: [early, late], encoders: {a: [embedding.mlp]}}

Built-in tasks ship with plugins (hook ``mmbench_tasks``); a path to a file works anywhere a
task name does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError, one_line, unknown_name_message

if TYPE_CHECKING:
    from mmbench.registry import Registry

METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "auroc", "balanced_accuracy", "pr_auc", "micro_f1", "samples_f1", "map", "rmse", "mae", "r2")
#: a task type's default selection metric
DEFAULT_METRICS = {"classification": "accuracy", "multilabel": "micro_f1", "regression": "rmse"}
_TOP_KEYS = {"name", "description", "data", "label", "task", "label_delimiter", "metric", "modalities", "split", "search", "source", "license", "suites", "sizes"}
_DATA_KEYS = {"provider", "options", "on_bad_rows", "degrade"}
_SPLIT_KEYS = {"validation", "test", "seed", "group_column", "allow_missing_classes", "group_duplicates", "folds", "repeats"}
#: Bounds of a task file: a settings file, never data (larger or deeper ones are refused with one line).
MAX_TASK_FILE_BYTES = 2**20
MAX_TASK_DEPTH = 32
#: the bound of ``--seed`` too (mmbench.search.values.MAX_SEED): seed + a repeat or trial number fits every library's seed
MAX_SPLIT_SEED = 2**31 - 1
SEARCH_KEYS = {"n_trials", "timeout", "max_epochs", "patience", "fusions", "encoders", "fixed", "batch_sizes"}


@dataclass(frozen=True)
class Task:
    """A parsed, validated task file.

    Attributes:
        name: how users select the task.
        provider: the dataset provider's name.
        options: options passed to the provider.
        label: the label column.
        metric: the selection metric (``accuracy``, ``macro_f1``, ``auroc``; ``rmse``, ``mae``, ``r2``
            for regression); unset: the task type's default (:func:`metric_for`).
        task_type: ``classification``, ``multilabel`` or ``regression`` (the ``task:`` key);
            ``None``: inferred from the label (:func:`mmbench.data.prepare.infer_task_type`).
        label_delimiter: separator of a multi-label column's text cells (``label_delimiter:``).
        description: one line for ``mmbench tasks``.
        modalities: column -> kind overrides.
        split: ``validation``, ``test``, ``seed``, ``group_column`` for unsplit data.
        search: default search settings (see :data:`SEARCH_KEYS`); a key set to null is left out (the default).
        data: the whole ``data`` block (provider-independent settings such as ``on_bad_rows``).
        path: the file it was read from.
        raw: the file's parsed content, logged as an artifact.
    """

    name: str
    provider: str
    options: Mapping[str, Any]
    label: str
    metric: str = "accuracy"
    description: str = ""
    modalities: Mapping[str, str] = field(default_factory=dict)
    split: Mapping[str, Any] = field(default_factory=dict)
    search: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    task_type: str | None = None
    label_delimiter: str | None = None
    path: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def load_task_file(path: str | Path) -> Task:
    """Read and validate a task file.

    Raises:
        ConfigError: the file is missing, not YAML, or has a missing/unknown/mistyped key;
            the message names the file and the key.
    """
    import yaml

    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path}: a task file must be a regular file")
        if path.stat().st_size > MAX_TASK_FILE_BYTES:
            raise ConfigError(f"{path}: task file is {path.stat().st_size / 2**20:.1f} MiB; task files hold at most "
                              f"{MAX_TASK_FILE_BYTES // 2**20} MiB of settings (put data in the provider's files)")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: task file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read task file ({one_line(error)})") from None
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({one_line(error)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested deeper than {MAX_TASK_DEPTH} levels") from None
    check_shape(content, path)
    return parse_task(content, source=path)


def check_shape(content: Any, source: Path | str) -> None:
    """Refuse a recursive YAML alias and nesting deeper than :data:`MAX_TASK_DEPTH` (both would
    crash or hang the code that walks the task later), iteratively, so the check itself cannot.

    Example:
        >>> loop = []; loop.append(loop)
        >>> check_shape({"data": {"options": {"x": loop}}}, "t.yaml")
        Traceback (most recent call last):
        mmbench.errors.ConfigError: t.yaml: a recursive YAML alias at data.options.x.0
    """
    stack: list[tuple[Any, str, int, frozenset[int]]] = [(content, "", 0, frozenset())]
    while stack:
        value, where, depth, above = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if id(value) in above:
            raise ConfigError(f"{source}: a recursive YAML alias at {where or 'the top level'}")
        if depth >= MAX_TASK_DEPTH:
            raise ConfigError(f"{source}: nested deeper than {MAX_TASK_DEPTH} levels at {where}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            stack.append((child, f"{where}.{key}" if where else str(key), depth + 1, above | {id(value)}))


def parse_task(content: Any, *, source: Path | str = "<task>") -> Task:
    """Validate a task's parsed content (a mapping) and build a :class:`Task`."""
    where = str(source)
    if not isinstance(content, dict):
        raise ConfigError(f"{where}: a task file must be a mapping of keys, got {type(content).__name__}")
    _reject_unknown(content, _TOP_KEYS, where)
    name = _required(content, "name", str, where)
    label = _required(content, "label", str, where)
    data = _required(content, "data", dict, where)
    _reject_unknown(data, _DATA_KEYS, f"{where}: data")
    provider = _required(data, "provider", str, f"{where}: data")
    options = _optional(data, "options", dict, f"{where}: data", {})
    if data.get("on_bad_rows", "error") not in ("error", "skip"):
        raise ConfigError(f"{where}: data.on_bad_rows must be 'error' or 'skip', got {data.get('on_bad_rows')!r}")
    if data.get("degrade") is not None:
        from mmbench.data.degrade.base import parse_degrade

        parse_degrade(data["degrade"], where)
    task_type = _optional(content, "task", str, where, None)
    if task_type is not None and task_type not in DEFAULT_METRICS:
        raise ConfigError(f"{where}: {unknown_name_message('task', task_type, DEFAULT_METRICS)}")
    metric = _optional(content, "metric", str, where, DEFAULT_METRICS[task_type or "classification"])
    if metric not in METRICS:
        raise ConfigError(f"{where}: {unknown_name_message('metric', metric, METRICS)}")
    if task_type is not None:
        _check_metric(metric, task_type, where)
    delimiter = _optional(content, "label_delimiter", str, where, None)
    modalities = _optional(content, "modalities", dict, where, {})
    for column, kind in modalities.items():
        if not isinstance(column, str) or not isinstance(kind, str):
            raise ConfigError(f"{where}: modalities must map column names to kinds, got {column!r}: {kind!r}")
    split = _optional(content, "split", dict, where, {})
    _reject_unknown(split, _SPLIT_KEYS, f"{where}: split")
    if split.get("folds") is not None and "validation" in split:
        raise ConfigError(f"{where}: split.validation does not apply with split.folds (each fold validates on its share of "
                          "the rows outside test); drop split.validation")
    for key in ("validation", "test"):
        if key in split and (isinstance(split[key], bool) or not isinstance(split[key], (int, float))):
            raise ConfigError(f"{where}: split.{key} must be a number, got {split[key]!r}")
    seed = split.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SPLIT_SEED:
        raise ConfigError(f"{where}: split.seed must be an integer in 0..{MAX_SPLIT_SEED}, got {seed!r}")
    if split.get("group_column") is not None and not isinstance(split["group_column"], str):
        raise ConfigError(f"{where}: split.group_column must be a column name, got {split['group_column']!r}")
    for key in ("allow_missing_classes", "group_duplicates"):
        if split.get(key) is not None and not isinstance(split[key], bool):
            raise ConfigError(f"{where}: split.{key} must be true or false, got {split[key]!r}")
    search = _optional(content, "search", dict, where, {})
    _reject_unknown(search, SEARCH_KEYS, f"{where}: search")
    search = {key: value for key, value in search.items() if value is not None}  # `patience: null` is the default
    description = _optional(content, "description", str, where, "")
    return Task(
        name=name,
        provider=provider,
        options=options,
        label=label,
        metric=metric,
        description=description.strip(),
        modalities=modalities,
        split=split,
        search=search,
        data=data,
        task_type=task_type,
        label_delimiter=delimiter,
        path=Path(source) if isinstance(source, Path) else None,
        raw=content,
    )


def metric_for(task: Task, task_type: str) -> Task:
    """The task with a metric of its (possibly inferred) type: a metric the file left unset becomes
    the type's default, a set one must belong to the type.

    Raises:
        ConfigError: the file's metric does not score this task type.
    """
    from dataclasses import replace

    if "metric" not in task.raw:
        return replace(task, metric=DEFAULT_METRICS[task_type], task_type=task_type)
    _check_metric(task.metric, task_type, str(task.path or task.name))
    return replace(task, task_type=task_type)


def _check_metric(metric: str, task_type: str, where: str) -> None:
    from mmbench.train.metrics import TASK_METRICS

    if metric not in TASK_METRICS[task_type]:
        raise ConfigError(f"{where}: metric '{metric}' does not score a {task_type} task; use one of "
                          f"{', '.join(TASK_METRICS[task_type])} (or set task: to the label's type)")


def builtin_tasks(registry: Registry) -> dict[str, Task]:
    """Every task shipped by a plugin, by name.

    Raises:
        ConfigError: two plugins ship a task of one name, or a shipped file is invalid.
    """
    tasks: dict[str, Task] = {}
    owners: dict[str, str] = {}
    for plugin, path in registry.task_files():
        if not Path(path).is_file():  # most often: the wheel lacks it ([tool.setuptools.package-data])
            raise ConfigError(f"plugin '{plugin}' ships task file {path}, which does not exist; "
                              "list it in [tool.setuptools.package-data] of the plugin's pyproject.toml")
        task = load_task_file(path)
        if task.name in tasks:
            raise ConfigError(f"task '{task.name}' is shipped by both plugin '{owners[task.name]}' and plugin '{plugin}'")
        tasks[task.name] = task
        owners[task.name] = plugin
    return tasks


def resolve_task(name_or_path: str, registry: Registry) -> Task:
    """A built-in task by name, or a task file by path.

    Raises:
        ConfigError: neither a known task nor an existing file (the message lists the tasks).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return load_task_file(path)
    tasks = builtin_tasks(registry)
    if name_or_path not in tasks:
        raise ConfigError(unknown_name_message("task", name_or_path, tasks))
    return tasks[name_or_path]


def _required(mapping: Mapping[str, Any], key: str, expected: type, where: str) -> Any:
    if key not in mapping:
        raise ConfigError(f"{where}: missing required key '{key}'")
    return _typed(mapping[key], key, expected, where)


def _optional(mapping: Mapping[str, Any], key: str, expected: type, where: str, default: Any) -> Any:
    if mapping.get(key) is None:
        return default
    return _typed(mapping[key], key, expected, where)


def _typed(value: Any, key: str, expected: type, where: str) -> Any:
    if not isinstance(value, expected) or (expected is str and not value.strip() and key in ("name", "label", "provider")):
        raise ConfigError(f"{where}: key '{key}' must be a non-empty {expected.__name__}, got {value!r}")
    return value


def _reject_unknown(mapping: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{where}: {unknown_name_message('key', str(key), allowed)}")

"""Loads plugins from the ``mmbench`` entry-point group and keeps name -> component tables.

Listing reads class attributes only: no model is built. Every problem a plugin can cause (an
import error, a misspelt hook, a duplicate or malformed component) is a
:class:`~mmbench.errors.PluginError` naming the plugin and, for duplicates, both plugins.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from mmbench import hookspecs
from mmbench.components import Encoder, Fusion
from mmbench.errors import (
    DuplicateComponentError,
    InvalidComponentError,
    MmbenchError,
    PluginLoadError,
    UnknownComponentError,
    unknown_name_message,
)
from mmbench.modalities import ModalityKind
from mmbench.providers import DatasetProvider
from mmbench.space import validate_space

if TYPE_CHECKING:
    from mmbench.data.schema import ModalityInfo

ENTRY_POINT_GROUP = "mmbench"
DISABLE_VARIABLE = "MMBENCH_DISABLE_PLUGINS"
_KIND_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SPACE_ENTRY = re.compile(r"""(["'])(\w+)\1\s*:\s*\w+\(""")
#: Component names: dot-separated lowercase parts (``early``, ``tp.moe``, ``text.gru``); the kit checks the same rule.
COMPONENT_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*(?:\.[a-z0-9][a-z0-9_\-]*)*")


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its registration name, distribution and version."""

    name: str
    distribution: str
    version: str


@dataclass
class Registry:
    """Name -> component tables built from the loaded plugins.

    Use :func:`get_registry` rather than building one by hand.
    """

    manager: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    _encoders: dict[str, type[Encoder]] = field(default_factory=dict)
    _fusions: dict[str, type[Fusion]] = field(default_factory=dict)
    _datasets: dict[str, type[DatasetProvider]] = field(default_factory=dict)
    _kinds: dict[str, type[ModalityKind]] = field(default_factory=dict)
    _task_files: list[tuple[str, Path]] = field(default_factory=list)
    _owner: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- listing -------------------------------------------------------------------------------

    def list_encoders(self, pattern: str = "*", *, modality: str | None = None) -> list[str]:
        """Encoder names matching a shell-style ``pattern``, optionally of one modality, sorted."""
        return sorted(
            name
            for name, cls in self._encoders.items()
            if fnmatch.fnmatchcase(name, pattern) and (modality is None or cls.modality == modality)
        )

    def list_fusions(self, pattern: str = "*") -> list[str]:
        """Fusion names matching ``pattern``, sorted."""
        return sorted(name for name in self._fusions if fnmatch.fnmatchcase(name, pattern))

    def list_datasets(self, pattern: str = "*") -> list[str]:
        """Dataset-provider names matching ``pattern``, sorted."""
        return sorted(name for name in self._datasets if fnmatch.fnmatchcase(name, pattern))

    def list_kinds(self, pattern: str = "*") -> list[str]:
        """Modality-kind names matching ``pattern``, sorted."""
        return sorted(name for name in self._kinds if fnmatch.fnmatchcase(name, pattern))

    def kind_of_file(self, path: str | Path) -> str | None:
        """The registered file-based modality kind whose ``extensions`` include ``path``'s suffix."""
        suffix = Path(path).suffix.lower()
        return next((name for name, kind in sorted(self._kinds.items()) if suffix and suffix in kind.extensions), None)

    def task_files(self) -> list[tuple[str, Path]]:
        """``(plugin, path)`` of every task file plugins ship."""
        return list(self._task_files)

    def owner(self, kind: str, name: str) -> str:
        """The plugin that registered component ``name`` of ``kind``."""
        return self._owner[(kind, name)]

    # -- lookup --------------------------------------------------------------------------------

    def get_encoder(self, name: str) -> type[Encoder]:
        return _lookup(self._encoders, "encoder", name)

    def get_fusion(self, name: str) -> type[Fusion]:
        return _lookup(self._fusions, "fusion", name)

    def get_dataset(self, name: str) -> type[DatasetProvider]:
        return _lookup(self._datasets, "dataset provider", name)

    def get_kind(self, name: str) -> type[ModalityKind]:
        return _lookup(self._kinds, "modality kind", name)

    def create_encoder(self, name: str, info: ModalityInfo, **hyperparameters: Any) -> Encoder:
        """Build encoder ``name`` for a modality."""
        cls = self.get_encoder(name)
        if cls.modality != info.kind:
            raise MmbenchError(f"encoder '{name}' reads {cls.modality}, but modality '{info.name}' is {info.kind}")
        return cls(info, **hyperparameters)

    def create_fusion(self, name: str, dims: dict[str, int], n_outputs: int, **hyperparameters: Any) -> Fusion:
        """Build fusion ``name`` over modalities of the given output sizes."""
        return self.get_fusion(name)(dims, n_outputs, **hyperparameters)

    # -- registration --------------------------------------------------------------------------

    def _collect(self) -> None:
        """Call each plugin's registration hooks and fill the tables."""
        tables: list[tuple[str, str, type, dict[str, Any]]] = [
            ("modality kind", "mmbench_modalities", ModalityKind, self._kinds),
            ("encoder", "mmbench_encoders", Encoder, self._encoders),
            ("fusion", "mmbench_fusions", Fusion, self._fusions),
            ("dataset", "mmbench_datasets", DatasetProvider, self._datasets),
        ]
        for kind, hook_name, base, table in tables:
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                for cls in _call_hook(impl, hook_name) or []:
                    self._add(kind, base, table, cls, impl.plugin_name)
        seen_tasks: dict[Path, str] = {}
        for impl in self.manager.hook.mmbench_tasks.get_hookimpls():
            for path in _call_hook(impl, "mmbench_tasks") or []:
                path = Path(path)
                if path not in seen_tasks:
                    seen_tasks[path] = impl.plugin_name
                    self._task_files.append((impl.plugin_name, path))

    def _add(self, kind: str, base: type, table: dict[str, Any], cls: Any, plugin: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise InvalidComponentError(
                f"plugin '{plugin}': {kind} hook returned {cls!r}, which is not a subclass of mmbench.{base.__name__}",
                plugin=plugin,
            )
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not name:
            raise InvalidComponentError(f"plugin '{plugin}': {kind} class {cls.__qualname__} declares no 'name'", plugin=plugin)
        if kind != "modality kind" and not COMPONENT_NAME.fullmatch(name):
            raise InvalidComponentError(
                f"plugin '{plugin}': {kind} name '{name}' must be lowercase letters, digits, '_' or '-', in parts joined "
                "by '.' (like 'tp.moe')", plugin=plugin,
            )
        if kind == "modality kind" and not _KIND_NAME.fullmatch(name):
            raise InvalidComponentError(
                f"plugin '{plugin}': modality kind '{name}' must be a lowercase name without dots, like 'timeseries'",
                plugin=plugin,
            )
        if kind == "encoder":
            if cls.modality not in self._kinds:
                raise InvalidComponentError(
                    f"plugin '{plugin}': encoder '{name}' has modality '{cls.modality}'; valid: {', '.join(sorted(self._kinds))}",
                    plugin=plugin,
                )
            if not name.startswith(f"{cls.modality}."):
                raise InvalidComponentError(
                    f"plugin '{plugin}': encoder '{name}' must be named '{cls.modality}.<name>'", plugin=plugin
                )
        try:
            validate_space(getattr(cls, "space", {}), f"plugin '{plugin}': {kind} '{name}'")
        except MmbenchError as error:
            raise InvalidComponentError(str(error), plugin=plugin) from None
        if name in table and (table[name] is not cls or self._owner[(kind, name)] != plugin):
            first = self._owner[(kind, name)]
            raise DuplicateComponentError(
                f"{kind} '{name}' is registered by both plugin '{first}' and plugin '{plugin}'; "
                f"disable one with {DISABLE_VARIABLE}={plugin}",
                plugin=plugin,
            )
        table[name] = cls
        self._owner[(kind, name)] = plugin


def _lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise UnknownComponentError(unknown_name_message(kind, name, table)) from None


def _call_hook(impl: pluggy.HookImpl, hook_name: str) -> Any:
    try:
        return impl.function()
    except MmbenchError as error:  # e.g. Int(64, 8) in a class body the hook defines: name plugin and component
        if f"plugin '{impl.plugin_name}'" in str(error):
            raise
        raise PluginLoadError(f"plugin '{impl.plugin_name}': hook {hook_name}{_component_of(error)}: {error}",
                              plugin=impl.plugin_name) from None
    except Exception as error:
        raise PluginLoadError(
            f"plugin '{impl.plugin_name}': hook {hook_name} raised {type(error).__name__}: {error}", plugin=impl.plugin_name
        ) from error


def _component_of(error: BaseException) -> str:
    """`` (class X, hyperparameter 'h')`` when raised while a class body ran (a bad ``space`` entry), else ``""``."""
    import linecache

    traceback, owner = error.__traceback__, ""
    while traceback is not None:
        frame = traceback.tb_frame
        if "__qualname__" in frame.f_locals and "__module__" in frame.f_locals:  # a class body's namespace
            line = linecache.getline(frame.f_code.co_filename, traceback.tb_lineno)
            key = _SPACE_ENTRY.search(line)
            owner = f" (class {frame.f_locals['__qualname__']}" + (f", hyperparameter '{key.group(2)}')" if key else ")")
        traceback = traceback.tb_next
    return owner


def disabled_plugins() -> set[str]:
    """Plugin names listed in ``MMBENCH_DISABLE_PLUGINS`` (comma-separated)."""
    return {name.strip() for name in os.environ.get(DISABLE_VARIABLE, "").split(",") if name.strip()}


def load_registry(*, extra_plugins: Iterable[tuple[str, object]] = (), disabled: Iterable[str] | None = None) -> Registry:
    """Load every ``mmbench`` entry point (minus disabled ones) and build a :class:`Registry`.

    Args:
        extra_plugins: ``(name, plugin)`` pairs registered besides the entry points (for tests
            and embedding applications).
        disabled: plugin names to skip; default from ``MMBENCH_DISABLE_PLUGINS``.

    Raises:
        PluginLoadError: an entry point failed to import, or implements a hook that does not exist.
        DuplicateComponentError: two plugins registered one name.
        InvalidComponentError: a hook returned something that is not a valid component class.
    """
    skip = disabled_plugins() if disabled is None else set(disabled)
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager=manager)
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        if entry_point.name in skip or entry_point.name in registry.plugins:
            continue
        distribution = entry_point.dist.name if entry_point.dist else "unknown"
        version = entry_point.dist.version if entry_point.dist else "unknown"
        try:
            plugin = entry_point.load()
        except Exception as error:
            raise PluginLoadError(
                f"plugin '{entry_point.name}' (distribution '{distribution}', entry point "
                f"'{entry_point.value}') failed to import{_component_of(error)}: {type(error).__name__}: {error}; "
                f"to run without it: {DISABLE_VARIABLE}={entry_point.name}",
                plugin=entry_point.name,
            ) from error
        _register(manager, plugin, entry_point.name)
        registry.plugins[entry_point.name] = PluginInfo(entry_point.name, distribution, version)
    for name, plugin in extra_plugins:
        if name not in skip:
            _register(manager, plugin, name)
            registry.plugins[name] = PluginInfo(name, "(registered in process)", "")
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        # pluggy names the plugin object, not its registration name (the one users can disable).
        name = manager.get_name(error.plugin) or repr(error.plugin)
        typo = re.search(r"unknown hook '(\w+)'", str(error))
        hooks = [h for h in dir(hookspecs) if h.startswith("mmbench_")]
        detail = unknown_name_message("hook", typo.group(1), hooks) if typo else str(error)
        raise PluginLoadError(f"plugin '{name}': {detail}", plugin=name) from None
    registry._collect()
    return registry


def _register(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        manager.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as error:
        raise PluginLoadError(f"plugin '{name}' could not be registered: {error}", plugin=name) from None


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _default
    if _default is None:
        _default = load_registry()
    return _default

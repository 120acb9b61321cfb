"""``mmbench plugins`` and ``mmbench tasks``: what the loaded plugins provide."""

from __future__ import annotations

import json

import typer

from mmbench.cli.common import FORMAT_TABLE_JSON, check_format


def plugins(fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """List loaded plugins and the encoders, fusions, dataset providers and modality kinds they provide."""
    from mmbench.registry import get_registry

    check_format(fmt, FORMAT_TABLE_JSON)
    registry = get_registry()
    entries = []
    for kind, names, getter in (
        ("encoder", registry.list_encoders(), registry.get_encoder),
        ("fusion", registry.list_fusions(), registry.get_fusion),
        ("dataset", registry.list_datasets(), registry.get_dataset),
    ):
        for name in names:
            cls = getter(name)
            entries.append({
                "kind": kind,
                "name": name,
                "modality": getattr(cls, "modality", None) if kind == "encoder" else None,
                "plugin": registry.owner(kind, name),
                "description": cls.description,
                "paper": getattr(cls, "paper", ""),
                "hyperparameters": {k: v.describe() for k, v in cls.space.items()},
                **({"options": dict(cls.options)} if kind == "dataset" else {}),
            })
    for name in registry.list_kinds():
        cls = registry.get_kind(name)
        entries.append({
            "kind": "modality", "name": name, "modality": name, "plugin": registry.owner("modality kind", name),
            "description": cls.description, "paper": "", "hyperparameters": {},
        })
    plugin_list = [{"name": p.name, "distribution": p.distribution, "version": p.version} for p in registry.plugins.values()]
    if fmt == "json":
        print(json.dumps({"plugins": plugin_list, "components": entries}, indent=2))
        return
    from rich.table import Table

    from mmbench.cli.console import table_console

    console = table_console()
    table = Table(title="plugins", title_justify="left")
    for column in ("plugin", "distribution", "version"):
        table.add_column(column)
    for p in plugin_list:
        table.add_row(p["name"], p["distribution"], p["version"])
    console.print(table)
    table = Table(title="components", title_justify="left")
    for column in ("kind", "name", "plugin", "hyperparameters / options", "description"):
        table.add_column(column)
    for e in entries:
        settings = {**e["hyperparameters"], **e.get("options", {})}  # a provider's options: name and help
        hyper = ", ".join(f"{k}: {v}" for k, v in settings.items()) or "-"
        table.add_row(e["kind"], e["name"], e["plugin"], hyper, e["description"])
    console.print(table)


def tasks(fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """List built-in and plugin-provided tasks."""
    from mmbench.registry import get_registry
    from mmbench.tasks.suites import suites_of
    from mmbench.tasks.files import builtin_tasks

    check_format(fmt, FORMAT_TABLE_JSON)
    found = builtin_tasks(get_registry())
    entries = [
        {
            "name": t.name,
            "provider": t.provider,
            "metric": t.metric,
            "label": t.label,
            "modalities": t.raw.get("sizes", {}).get("modalities") or sorted(set(t.modalities.values())),
            "rows": t.raw.get("sizes", {}).get("rows"),
            "suites": suites_of(t),
            "description": t.description,
            "path": str(t.path),
        }
        for t in sorted(found.values(), key=lambda t: t.name)
    ]
    if fmt == "json":
        print(json.dumps(entries, indent=2))
        return
    from rich.table import Table

    from mmbench.cli.console import table_console

    table = Table(title="tasks", title_justify="left")
    for column in ("name", "provider", "modalities", "rows", "metric", "suites", "description"):
        table.add_column(column)
    for e in entries:
        table.add_row(e["name"], e["provider"], ", ".join(e["modalities"]), str(e["rows"] or "-"), e["metric"],
                      ", ".join(e["suites"]) or "-", e["description"])
    table_console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``plugins`` and ``tasks`` to the ``mmbench`` app."""
    app.command()(plugins)
    app.command()(tasks)

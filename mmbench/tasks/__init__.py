"""Tasks: task files, benchmark suites and loading a task's data."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "Task": ".files",
        "builtin_tasks": ".files",
        "data_root": ".loading",
        "load_task_data": ".loading",
        "load_task_file": ".files",
        "parse_task": ".files",
        "resolve_task": ".files",
        "select_suite": ".suites",
        "suite_tasks": ".suites",
        "task_suites": ".suites",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__

"""Running ``mmbench`` commands from tests.

:func:`run_cli` runs a command in this process, as ``mmbench.cli.app.main`` with ``sys.argv``
set: no second start-up of torch, mlflow and the plugins (seconds per command on 2 shared
cores), so an end-to-end test of several commands stays cheap. :func:`run_cli_process` runs it
as a child process, for tests about the process itself (start-up, signals, environment read at
import, a crash that must not take the interpreter down).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping


def run_cli(*args: str, env: Mapping[str, str] | None = None,
            stops: tuple[type[BaseException], ...] = ()) -> subprocess.CompletedProcess:
    """``mmbench ARGS`` in this process: its exit code, stdout and stderr, as a child's would be.

    An exception that escapes the CLI is raised here (a child would print its traceback and exit 1),
    except one of ``stops``: a test's stub ending the command early on purpose, counted as exit 0.
    """
    from mmbench.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, {name: os.environ.get(name) for name in env or {}}
    sys.argv = ["mmbench", *args]
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except stops:
        code = 0
    finally:
        sys.argv = saved_argv
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess(["mmbench", *args], code, out.getvalue(), err.getvalue())


def run_cli_process(*args: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m mmbench.cli ARGS`` as a child process (``env``: variables added to this one's)."""
    return subprocess.run([sys.executable, "-m", "mmbench.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})

"""Real servers for the scale-out tests: a PostgreSQL 15 server and an ``mlflow server``.

Session-scoped fixtures, registered once by ``tests/conftest.py``.
PostgreSQL runs as the ``postgres`` system user when the tests run as root (it refuses root),
in a temp dir, listening on 127.0.0.1 on a free port with its unix socket in the temp dir. Each
test asks for its own database (``postgres.database(name)``), owned by a role with a password,
so URLs carry real credentials. With ``MMBENCH_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) a
server that cannot start fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("MMBENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "mmbench"
PG_PASSWORD = "pg-s3cret-Q7x"  # tests assert this never shows up in MLflow or in messages
SUPERUSER_PASSWORD = "super-s3cret-Z9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the ``postgres`` system user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--", *command] if runuser else ["su", "postgres", "-c", " ".join(command)]


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL server; :meth:`database` makes a fresh database per test."""

    root: Path
    port: int
    process: subprocess.Popen | None = None
    databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> PostgresServer:
        if not (PG_BIN / "postgres").exists():
            raise RuntimeError(f"no PostgreSQL binaries in {PG_BIN}")
        root = Path(tempfile.mkdtemp(prefix="mmbench-pg-"))
        server = cls(root=root, port=free_port())
        data, run = root / "data", root / "run"
        run.mkdir()
        pwfile = root / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            for path in (run, pwfile):
                shutil.chown(path, "postgres")
            os.chmod(root, 0o700)
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
                                     "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        log = open(root / "server.log", "wb")  # noqa: SIM115 - kept open for the server's life
        server.process = subprocess.Popen(
            _as_postgres([str(PG_BIN / "postgres"), "-D", str(data), "-p", str(server.port), "-k", str(run),
                          "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                          "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        server._wait_ready()
        server._admin(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}' CREATEDB")
        return server

    def _connect(self, user: str = "postgres", password: str = SUPERUSER_PASSWORD, dbname: str = "postgres"):  # noqa: ANN202
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname,
                                connect_timeout=5)

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                self._connect().close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _admin(self, sql: str) -> None:
        connection = self._connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    def database(self, name: str) -> str:
        """Create database ``name`` owned by the password-protected role; return its URL."""
        self._admin(f"CREATE DATABASE {name} OWNER {PG_USER}")
        self.databases.append(name)
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)  # immediate shutdown: the data is thrown away
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class MlflowServer:
    """``mlflow server`` on a loopback port with a SQLite backend and a local artifact root."""

    root: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, root: Path) -> MlflowServer:
        server = cls(root=root, port=free_port())
        artifacts = root / "artifacts"
        artifacts.mkdir(parents=True)
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow) if mlflow.exists() else "mlflow", "server", "--backend-store-uri",
                   f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", artifacts.as_uri(),
                   "--host", "127.0.0.1", "--port", str(server.port), "--workers", "1"]
        log = open(root / "server.log", "wb")  # noqa: SIM115 - kept open for the server's life
        server.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return server
            except OSError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("mlflow server did not answer /health within 120 s")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # its store is thrown away: no graceful shutdown to wait for
            self.process.wait()


# -- `mmbench` worker processes ----------------------------------------------------------------

#: Imported once by the fork server, so each worker starts in a fraction of a second instead of
#: paying ~10 s of CPU for torch, torchmetrics, MLflow and Optuna imports on a loaded CI machine.
PRELOAD = ["mmbench.cli.app", "mmbench.search.study", "mmbench.train.loop", "mmbench.train.metrics", "mmbench.tracking.tracker", "mmbench.search.storage",
           "mmbench.train.guards", "mmbench.registry", "torch", "torch._dynamo", "torchmetrics", "mlflow", "optuna",
           "sqlalchemy", "psycopg2", "tests.servers"]
WORKER_ENV = {"PYTHONUNBUFFERED": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


def _run_cli(argv: list[str], cwd: str, out: str, err: str, env: dict[str, str]) -> None:
    """Body of a worker process: ``mmbench ARGV`` exactly as the console script runs it."""
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own streams
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(cwd)
    os.environ.update(env)
    import torch

    torch.set_num_threads(1)
    sys.argv = ["mmbench", *argv]
    from mmbench.cli.app import main

    main()


class Worker:
    """A ``mmbench`` command in its own process, with the parts of :class:`subprocess.Popen` the tests use.

    Started from a fork server that has already imported mmbench and its heavy dependencies
    (:data:`PRELOAD`): the process then runs ``mmbench.cli.app.main()`` with ``sys.argv`` set, the same
    code path as the ``mmbench`` console script, in a process of its own (own pid, own signals, own
    database and HTTP connections; SIGKILL kills it alone).
    """

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        import multiprocessing

        root = str(Path(__file__).resolve().parents[1])
        if root not in sys.path:  # the fork server takes our sys.path, and must import this module
            sys.path.append(root)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # no effect once the fork server runs: it is started once
        self._logs = Path(tempfile.mkdtemp(prefix="worker-", dir=os.getcwd()))  # the test's own folder (conftest)
        self._out, self._err = self._logs / "stdout", self._logs / "stderr"
        self.process = context.Process(target=_run_cli, args=(list(argv), os.getcwd(), str(self._out), str(self._err),
                                                              {**WORKER_ENV, **(env or {})}), daemon=False)
        self.process.start()
        self.args = argv

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end (killing the process if it overruns ``timeout``); return (stdout, stderr)."""
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.join()
            raise
        return self.output()

    def output(self) -> tuple[str, str]:
        return tuple(path.read_text(errors="replace") if path.exists() else "" for path in (self._out, self._err))


def start_cli(argv: list[str], **kwargs: object) -> Worker:
    """Run ``mmbench ARGV`` in a worker process (see :class:`Worker`)."""
    return Worker(argv, **kwargs)


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL 15 (skipped when it cannot start, unless MMBENCH_REQUIRE_POSTGRES=1)."""
    try:
        server = PostgresServer.start()
    except Exception as error:
        message = f"PostgreSQL server could not start: {type(error).__name__}: {error}"
        if os.environ.get("MMBENCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " (MMBENCH_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A running ``mlflow server`` on 127.0.0.1 (its URL: ``mlflow_server.url``)."""
    server = MlflowServer.start(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        server.stop()

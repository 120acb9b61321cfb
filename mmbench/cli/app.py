"""The ``mmbench`` command line (typer + rich): the app, assembled from one module per command group.

Groups: :mod:`~mmbench.cli.search`, :mod:`~mmbench.cli.leaderboard`, :mod:`~mmbench.cli.ensemble`, :mod:`~mmbench.cli.catalog`
(plugins, tasks), :mod:`~mmbench.cli.evaluate` (evaluate, reproduce, predict, report).

Heavy modules (torch, mlflow, optuna, transformers, torchmetrics) are imported inside the
commands, so ``mmbench --help`` stays instant. User errors (:class:`MmbenchError`) print one
line and exit with code 2.
"""

from __future__ import annotations

import typer

from mmbench.cli import catalog, ensemble, evaluate, inspect, leaderboard, search
from mmbench.errors import MmbenchError

app = typer.Typer(
    name="mmbench",
    help="AutoML for multimodal learning: search encoders, fusion strategies and hyperparameters; "
    "compare them across benchmark tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _group in (inspect, search, leaderboard, ensemble, catalog, evaluate):  # the order of `mmbench --help`
    _group.register(app)


def main() -> None:
    """Console-script entry point: user errors print one line and exit 2."""
    from mmbench.infra.threads import passive_openmp

    passive_openmp()  # before any command imports torch (mmbench.infra.threads)
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer returns exit codes (130 after Ctrl-C) instead of raising
            raise SystemExit(code)
    except MmbenchError as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    except Exception as error:  # usage errors arrive here in non-standalone mode (typer >= 0.24 vendors click)
        if isinstance(error, typer.TyperException):  # typer._click.ClickException and its usage errors
            show = getattr(error, "show", None)
            if show is not None:
                show()
            else:
                typer.echo(f"error: {error.format_message()}", err=True)
            raise SystemExit(error.exit_code) from None
        if isinstance(error, typer.Abort):
            typer.echo("aborted", err=True)
            raise SystemExit(130) from None
        raise
    except KeyboardInterrupt as error:  # mmbench.infra.signals.StopRequested carries its message and exit code
        typer.echo(f"error: {error}" if str(error) else "interrupted", err=True)
        raise SystemExit(getattr(error, "exit_code", 130)) from None


if __name__ == "__main__":
    main()

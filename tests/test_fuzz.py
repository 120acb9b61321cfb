"""Bad input never crashes: the task-file loader and the CLI fuzzed with hypothesis.

Over 1,000 generated cases in all. The only acceptable outcomes are success or a
:class:`~mmbench.errors.MmbenchError` (the CLI: exit code 0 or 2, one ``error:`` line); any other
exception is a traceback a user would see, and fails the test with the input that caused it.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmbench.errors import MmbenchError


def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))

VALID_TASK = {
    "name": "fuzz",
    "description": "a task",
    "data": {"provider": "synthetic", "options": {"n_samples": 64}},
    "label": "label",
    "metric": "accuracy",
    "modalities": {"x1": "embedding"},
    "split": {"validation": 0.2, "test": 0.2, "seed": 0},
    "search": {"n_trials": 2, "max_epochs": 1, "fusions": ["early"]},
}
KEYS = [*VALID_TASK, "provider", "options", "on_bad_rows", "degrade", "validation", "test", "seed", "group_column",
        "n_trials", "fusions", "encoders", "fixed", "batch_sizes", "timeout", "sizes", "suites", "source", "license", ""]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["accuracy", "auroc", "synthetic", "label", "skip", "error"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()), inner, max_size=5),
                      max_leaves=12)


@st.composite
def mutated_tasks(draw) -> object:
    """A valid task with a few keys, at any depth, replaced, removed or added."""
    task = yaml.safe_load(yaml.safe_dump(VALID_TASK))
    for _ in range(draw(st.integers(1, 4))):
        target = task
        path = draw(st.lists(st.sampled_from(["data", "split", "search", "options", "modalities"]), max_size=2))
        for key in path:
            if isinstance(target, dict) and isinstance(target.get(key), dict):
                target = target[key]
        if not isinstance(target, dict):
            break
        key = draw(st.sampled_from(sorted(set(KEYS) | set(target), key=str)))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(values)
    return task


def expect_clean(function, *args, **kwargs) -> None:
    try:
        function(*args, **kwargs)
    except MmbenchError as error:
        message = str(error)
        assert message and "\n" not in message.strip(), repr(message)


@fuzz(450)
@given(st.one_of(values, mutated_tasks()))
def test_parse_task_accepts_or_names_the_problem(content):
    from mmbench.tasks.files import parse_task

    expect_clean(parse_task, content, source=Path("fuzz.yaml"))


yaml_text = st.one_of(
    st.text(max_size=200),
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    mutated_tasks().map(lambda v: yaml.safe_dump(v)),
    st.sampled_from(["!!python/object/apply:os.system ['echo pwned']", "a: &x [*x]", "{", "- - -", ":", "\t",
                     "name: x\ndata: !!binary AAAA", "? [a]\n: b", "%YAML 9.9\n---\na: 1"]),
)


@fuzz(300)
@given(st.one_of(yaml_text.map(str.encode), st.binary(max_size=200)))
@example(b"? '\n\n'")  # a key that is only newlines: the message must still be one line
@example(b"name: t\nlabel: l\ndata: {provider: p}\nmetric: \"acc\\tx\\ny\"")
def test_load_task_file_accepts_or_names_the_file(data):
    from mmbench.tasks.files import load_task_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "task.yaml"
        path.write_bytes(data)
        expect_clean(load_task_file, path)


# -- the CLI, in-process ---------------------------------------------------------------------------


class Reached(BaseException):
    """Raised by the stubbed search: every argument was accepted (nothing is trained)."""


OPTION_VALUES = {
    "--n-trials": ["0", "-1", "3", "x", "1e9"], "--timeout": ["0", "-5", "1.5", "nan", "inf", "abc"],
    "--max-epochs": ["0", "2", "-3"], "--n-jobs": ["0", "2"], "--sampler": ["tpe", "grid", "tpee", ""],
    "--pruner": ["none", "median", "x"], "--objectives": ["metric", "metric,latency", "latency", "metric,foo", ",", ""],
    "--set": ["train.lr=1e-3", "=3", "noequals", "a=[1,", "train.batch_size=!!python/none"],
    "--encoders": ["x1=embedding.mlp", "x1=", "=a", "nope", "x1=a,,b"], "--fusions": ["early", ",", "tfn,late", ""],
    "--device": ["cpu", "auto", "cuda:99", "tpu", ""], "--seed": ["0", "-1", "x"], "--heartbeat": ["0", "-1", "5", "x"],
    "--storage": ["sqlite:///x.db", "journal:///nonexistent/dir/s.log", "s.log", "notaurl"],
    "--tracking-uri": ["sqlite:///missing.db"], "--data-root": ["/nonexistent", "."], "--study": ["s", ""],
    "--format": ["table", "json", "csv", "markdown", "xml", ""], "--top": ["0", "3", "-2", "x"], "--task": ["synth-mixed", ""],
    "--fusion": ["early"], "--suite": ["core", "nope", ""], "--trials-per-gpu": ["0", "2", "x"],
}
words = st.one_of(
    st.sampled_from(["search", "leaderboard", "plugins", "tasks", "bogus", "--help", "--all-tasks", "--quiet", "--plots",
                     "--no-plots", "synth-mixed", "synth-mixd", "missing.yaml", "--", "-q"]),
    st.sampled_from(sorted(OPTION_VALUES)).flatmap(lambda o: st.tuples(st.just(o), st.sampled_from(OPTION_VALUES[o]))),
    st.text(max_size=10),
)


def flatten(items) -> list[str]:
    out: list[str] = []
    for item in items:
        out.extend(item if isinstance(item, tuple) else [item])
    return out


@pytest.fixture(scope="module")
def cli_main():
    """``mmbench.cli.app.main`` with the search stubbed out and the registry loaded once."""
    import mmbench.search.study
    from mmbench.cli.app import main
    from mmbench.registry import get_registry

    get_registry()

    def stub(*args, **kwargs):
        raise Reached

    saved = mmbench.search.study.run_search, mmbench.search.study.run_suite
    mmbench.search.study.run_search = mmbench.search.study.run_suite = stub
    yield main
    mmbench.search.study.run_search, mmbench.search.study.run_suite = saved


def run_main(main, argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["mmbench", *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except Reached:
        code = 0
    finally:
        sys.argv = saved
    return code, err.getvalue()


@fuzz(320)
@given(st.lists(words, max_size=7).map(flatten))
@example([])  # no arguments: the help, exit 2 (typer's own usage error, not click's)
@example(["search", "\n"])  # a task name with a newline
@example(["leaderboard", "--format", "x\ny"])
def test_cli_arguments_never_escape_as_a_traceback(cli_main, argv):
    code, err = run_main(cli_main, argv)
    assert code in (0, 2), (argv, code, err[-2000:])
    assert "Traceback" not in err, (argv, err[-2000:])
    if code == 2 and err.startswith("error: "):
        assert len(err.strip().splitlines()) == 1, (argv, err)


# -- untrusted input is parsed, never executed --------------------------------------------------------


def test_a_task_file_cannot_run_code(tmp_path):
    from mmbench.errors import ConfigError
    from mmbench.tasks.files import load_task_file

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\nlabel: l\ndata: {{provider: p}}\n")
    with pytest.raises(ConfigError, match="evil.yaml: not valid YAML"):
        load_task_file(path)
    assert not marker.exists()


UNSAFE_CALLS = {  # call -> keyword that makes it safe (None: never safe on untrusted data)
    "yaml.load": None, "yaml.unsafe_load": None, "yaml.full_load": None, "pickle.load": None, "pickle.loads": None,
    "dill.load": None, "cloudpickle.load": None, "joblib.load": None, "torch.load": ("weights_only", True),
    "np.load": ("allow_pickle", False), "numpy.load": ("allow_pickle", False),
}


def test_the_code_base_deserialises_nothing_unsafely():
    """``yaml.safe_load`` only, ``torch.load(weights_only=True)``, no pickle; no remote code for HF models."""
    import ast

    root = Path(__file__).resolve().parents[1]
    found = []
    files = [p for folder in ("mmbench", "plugins", "examples", "benchmarks") for p in (root / folder).rglob("*.py")]
    assert len(files) > 30
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            remote = keywords.get("trust_remote_code")
            if remote is not None and not (isinstance(remote, ast.Constant) and remote.value is False):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}(trust_remote_code=...)")
            if name not in UNSAFE_CALLS:
                continue
            safe = UNSAFE_CALLS[name]
            value = keywords.get(safe[0]) if safe else None
            if not (isinstance(value, ast.Constant) and value.value is safe[1]) and not (
                    name.endswith("np.load") and value is None):  # numpy refuses pickles unless allowed
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found

"""Bad input never crashes: the task-file loader and the CLI fuzzed with hypothesis.

Over 1,000 generated cases in all. The only acceptable outcomes are success or a
:class:`~mmbench.errors.MmbenchError` (the CLI: exit code 0 or 2, one ``error:`` line); any other
exception is a traceback a user would see, and fails the test with the input that caused it.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmbench.errors import MmbenchError
from tests.cli import run_cli


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


@pytest.fixture
def cli_main(monkeypatch):
    """The search stubbed out (undone after the test) and the registry loaded once: a command run by
    :func:`run_main` stops where the search would start."""
    import mmbench.search.study
    from mmbench.registry import get_registry

    get_registry()

    def stub(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(mmbench.search.study, "run_search", stub)
    monkeypatch.setattr(mmbench.search.study, "run_suite", stub)


def run_main(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``mmbench ARGV`` in this process; reaching the stubbed search counts as exit 0."""
    result = run_cli(*argv, stops=(Reached,))
    return result.returncode, result.stderr


@fuzz(320)
@given(st.lists(words, max_size=7).map(flatten))
@example([])  # no arguments: the help, exit 2 (typer's own usage error, not click's)
@example(["search", "\n"])  # a task name with a newline
@example(["leaderboard", "--format", "x\ny"])
def test_cli_arguments_never_escape_as_a_traceback(cli_main, argv):
    code, err = run_main(argv)
    assert code in (0, 2), (argv, code, err[-2000:])
    assert "Traceback" not in err, (argv, err[-2000:])
    if code == 2 and err.startswith("error: "):
        assert len(err.strip().splitlines()) == 1, (argv, err)


@pytest.mark.parametrize("flags, flag", [
    (["--heartbeat", "1e12"], "'--heartbeat'"), (["--n-trials", "1e3"], "'--n-trials'"), (["--seed", "2**32"], "'--seed'"),
    (["--heartbeat", str(10**12)], "--heartbeat"), (["--cache-size-gb", "inf"], "--cache-size-gb"),
    (["--memory-budget-gb", "1e308"], "--memory-budget-gb"),
])
def test_an_unusable_number_names_its_flag_with_exit_2(cli_main, flags, flag):
    code, err = run_main(["search", "synth-mixed", *flags])
    assert code == 2 and "Traceback" not in err, err
    assert flag in err.strip().splitlines()[-1], err


def test_digit_separators_read_as_python_reads_them(cli_main, monkeypatch):
    """``--n-trials 1_0`` is ten trials, as ``--set train.n=1_000`` is a thousand (it was reported to hang: it ran 10 trials)."""
    import mmbench.search.study

    seen = []

    def capture(settings, **kwargs):
        seen.append(settings)
        raise Reached

    monkeypatch.setattr(mmbench.search.study, "run_search", capture)
    assert run_main(["search", "synth-mixed", "--n-trials", "1_0", "--seed", "1_0"]) == (0, "")
    assert seen[0].budget.n_trials == 10 and seen[0].seed == 10


# -- whole task files through `mmbench search` ------------------------------------------------

#: one tiny shipped-style table (numbers, a category, a text, a label), and a valid task over it
TABLE = "x1,x2,colour,review,label\n" + "".join(
    f"{i * 0.37 % 3:.2f},{i % 5},{['red', 'blue', 'green'][i % 3]},the item was {['good', 'bad'][i % 2]} and {['big', 'odd'][i % 3 % 2]},{i % 2}\n"
    for i in range(40))
TABLE_TASK = {"name": "shape", "data": {"provider": "files", "options": {"path": "data.csv"}}, "label": "label",
              "split": {"validation": 0.25, "test": 0.25, "seed": 0}, "search": {"max_epochs": 1, "fusions": ["early"]}}
edge_numbers = st.sampled_from([0, 1, -1, 2, 3, 0.5, 1.5, -0.0, 1e-300, 1e308, math.inf, -math.inf, math.nan, 2**31, 2**32, 2**63,
                                10**30, True, False])
names = st.sampled_from(["early", "late", "tfn", "gmu", "tabular.mlp", "text.bow", "text.rnn", "embedding.mlp", "image.cnn",
                         "tabular", "text", "numeric", "categorical", "ignore", "x1", "colour", "review", "label", "skip", "error",
                         "accuracy", "rmse", "regression", "files", "synthetic", "data.csv", "missing.csv", "1e-3", "", " "])
odd_values = st.recursive(st.one_of(st.none(), edge_numbers, names, st.text(max_size=6)),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names | st.text(max_size=4), inner, max_size=3),
                          max_leaves=6)
#: where in a task file -> the keys mutations set or drop there (known keys, and one unknown)
PLACES = {
    (): ["name", "description", "data", "label", "task", "label_delimiter", "metric", "modalities", "split", "search", "sizes",
         "suites", "bogus"],
    ("data",): ["provider", "options", "on_bad_rows", "degrade", "bogus"],
    ("data", "options"): ["path", "train", "validation", "test", "format", "base_dir", "bogus"],
    ("split",): ["validation", "test", "seed", "group_column", "allow_missing_classes", "group_duplicates", "folds", "repeats",
                 "bogus"],
    ("search",): ["n_trials", "timeout", "time_limit", "max_epochs", "patience", "fusions", "encoders", "fixed", "batch_sizes",
                  "bogus"],
    ("search", "encoders"): ["tabular", "text", "x1", "nope"],
    ("search", "fixed"): ["train.lr", "train.batch_size", "train.max_epochs", "train.weight_decay", "fusion", "nope"],
    ("modalities",): ["x1", "x2", "colour", "review", "label", "nope"],
}


fractions = st.sampled_from([1e-9, 0.05, 0.1, 0.25, 0.5, 0.9])
encoder_names = st.lists(st.sampled_from(["tabular.mlp", "text.bow", "text.rnn", "text.transformer", "embedding.mlp", "nope"]),
                         min_size=1, max_size=2)
#: (place, key) -> values of the right type, edges included (the rest get ``odd_values``)
PLAUSIBLE = {
    ((), "task"): st.sampled_from(["classification", "regression", "multilabel"]),
    ((), "metric"): st.sampled_from(["accuracy", "macro_f1", "auroc", "micro_f1", "rmse", "r2"]),
    ((), "label"): st.sampled_from(["label", "x1", "x2", "colour", "review"]),
    ((), "label_delimiter"): st.sampled_from(["|", " ", ","]),
    (("data",), "on_bad_rows"): st.sampled_from(["skip", "error"]),
    (("data", "options"), "format"): st.sampled_from(["csv", "tsv", "jsonl", "parquet"]),
    (("split",), "validation"): fractions,
    (("split",), "test"): fractions,
    (("split",), "seed"): st.sampled_from([0, 1, 2**31, 2**32, 2**63, -1]),
    (("split",), "folds"): st.sampled_from([2, 3, 39, 40, 1000]),
    (("split",), "repeats"): st.sampled_from([1, 2]),
    (("split",), "group_column"): st.sampled_from(["colour", "x2", "review", "label", "nope"]),
    (("split",), "allow_missing_classes"): st.booleans(),
    (("split",), "group_duplicates"): st.booleans(),
    (("search",), "n_trials"): st.sampled_from([1, 2, 10**9]),
    (("search",), "timeout"): st.sampled_from([1e-3, 60, 1e9]),
    (("search",), "time_limit"): st.sampled_from([1e-3, 60]),
    (("search",), "max_epochs"): st.sampled_from([1, 2]),
    (("search",), "patience"): st.sampled_from([0, 1, 100]),
    (("search",), "fusions"): st.lists(st.sampled_from(["early", "late", "tfn", "gmu", "lmf", "film", "nope"]), min_size=1, max_size=2),
    (("search",), "batch_sizes"): st.lists(st.sampled_from([1, 2, 3, 64, 10**6]), min_size=1, max_size=2),
    (("search",), "encoders"): st.dictionaries(st.sampled_from(["tabular", "text", "nope"]), encoder_names, max_size=2),
    (("search",), "fixed"): st.dictionaries(st.sampled_from(["train.lr", "train.batch_size", "train.max_epochs", "train.patience"]),
                                            edge_numbers, max_size=2),
    (("search", "encoders"), "tabular"): encoder_names,
    (("search", "encoders"), "text"): encoder_names,
    (("search", "fixed"), "train.lr"): st.sampled_from([1e-5, 1e-3, 0.1, 1.0]),
    (("search", "fixed"), "train.batch_size"): st.sampled_from([1, 2, 7, 10**6]),
    (("modalities",), "x1"): st.sampled_from(["numeric", "categorical", "text", "ignore", "embedding", "image"]),
    (("modalities",), "colour"): st.sampled_from(["numeric", "categorical", "text", "ignore", "audio"]),
    (("modalities",), "review"): st.sampled_from(["text", "categorical", "ignore", "video"]),
}


@st.composite
def task_shapes(draw) -> dict:
    """The valid task with one to three keys, at any known place, set to a value of the right type
    (edges included), an odd value, or dropped."""
    task = yaml.safe_load(yaml.safe_dump(TABLE_TASK))
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(sorted(PLACES)))
        target = task
        for key in place:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        key = draw(st.sampled_from(PLACES[place]))
        action = draw(st.integers(0, 4))
        if action == 0:
            target.pop(key, None)
        else:
            target[key] = draw(PLAUSIBLE[place, key] if action > 1 and (place, key) in PLAUSIBLE else odd_values)
    return task


@pytest.fixture(scope="module")
def search_main(tmp_path_factory):
    """``mmbench search`` in this process: a full run of one 1-epoch trial, or with ``plan_only`` a run
    that stops once the task is planned (data loaded, space and budget built), before a study opens.

    One Optuna and one MLflow store serve every call (a fresh MLflow store costs seconds), each call
    its own study. Measured: a full run takes 2-5 s, 40 of them 51 s; planning takes 0.1 s.
    """
    import itertools

    import mmbench.search.study
    from mmbench.registry import get_registry

    get_registry()
    stores = tmp_path_factory.mktemp("stores")
    studies = itertools.count()
    open_study = mmbench.search.study.open_study

    def stop(*args, **kwargs):
        raise Reached

    def search(folder, *flags: str, plan_only: bool = False) -> tuple[int, str]:
        mmbench.search.study.open_study = stop if plan_only else open_study
        try:
            return run_main(["search", str(folder / "task.yaml"), "--n-trials", "1", "--max-epochs", "1", "--no-plots",
                             "--quiet", "--device", "cpu", "--study", f"shape{next(studies)}",
                             "--storage", f"sqlite:///{stores}/optuna.db", "--tracking-uri", f"sqlite:///{stores}/mlflow.db",
                             *flags])
        finally:
            mmbench.search.study.open_study = open_study

    return search


def shaped(**changes: dict) -> dict:
    """The valid task with some blocks' keys replaced (``data={"options": {...}}`` replaces data.options)."""
    task = yaml.safe_load(yaml.safe_dump(TABLE_TASK))
    for block, keys in changes.items():
        task[block] = {**task.get(block, {}), **keys} if isinstance(keys, dict) else keys
    return task


def search_shape(search, folder, shape: dict, *flags: str, plan_only: bool = False) -> tuple[int, str]:
    (folder / "data.csv").write_text(TABLE)
    (folder / "task.yaml").write_text(yaml.safe_dump(shape))
    return search(folder, *flags, plan_only=plan_only)


def assert_ran_or_refused_in_one_line(shape: dict, code: int, err: str) -> None:
    assert code in (0, 2), (shape, code, err[-2000:])
    assert "Traceback" not in err, (shape, err[-2000:])
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], (shape, err)


@fuzz(60)
@given(task_shapes())
@example(shaped(data={"provider": "files", "options": {"path": 1}}))  # TypeError in LoadContext.resolve
@example(shaped(data={"provider": "files", "options": {"path": ["data.csv", None]}}))
@example(shaped(data={"provider": "files", "options": {"path": "data.csv", "format": [2, ""]}}))  # unhashable list
@example(shaped(search={"patience": None}))  # int(None) while planning
@example(shaped(split={"seed": 2**32}))  # NumPy: seed must be below 2**32
def test_a_task_file_of_any_shape_plans_or_is_refused_in_one_line(search_main, tmp_path_factory, shape):
    code, err = search_shape(search_main, tmp_path_factory.mktemp("shape"), shape, plan_only=True)
    assert_ran_or_refused_in_one_line(shape, code, err)


@pytest.mark.parametrize("shape", [
    shaped(split={"test": 1e-9}), shaped(split={"group_column": "colour"}), shaped(modalities={"colour": "text", "x1": "categorical"}),
    shaped(search={"batch_sizes": [1], "patience": 0, "n_trials": 10**9}), shaped(search={"fixed": {"train.batch_size": 10**6}}),
    shaped(search={"encoders": {"text": ["text.transformer"]}, "fusions": ["tfn"], "timeout": 1e-3}),
], ids=["tiny-test-split", "grouped", "retyped-columns", "batch-of-1", "batch-of-a-million", "transformer-tfn"])
def test_edge_task_files_that_plan_also_run_a_trial_or_are_refused_in_one_line(search_main, tmp_path, shape):
    code, err = search_shape(search_main, tmp_path, shape)
    assert_ran_or_refused_in_one_line(shape, code, err)


@pytest.mark.parametrize("where", ["flag", "task file"])
def test_an_unknown_modality_lists_each_name_once(search_main, tmp_path, where):
    """Issue 18 saw ``available: embedding, embedding, tabular, tabular, text, text``: modality and kind names, each listed twice."""
    shape = shaped(search={"encoders": {"txt": ["text.bow"]}}) if where == "task file" else TABLE_TASK
    flags = ["--encoders", "txt=text.bow"] if where == "flag" else []
    code, err = search_shape(search_main, tmp_path, shape, *flags, plan_only=True)
    assert code == 2 and err.strip().endswith("unknown modality 'txt'; available: tabular, text (did you mean 'text'?)"), err


def test_a_multilabel_task_over_integer_labels_is_refused_in_one_line(search_main, tmp_path):
    code, err = search_shape(search_main, tmp_path, shaped(task="multilabel"))
    assert code == 2 and err.startswith("error: ") and "row" in err, err


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

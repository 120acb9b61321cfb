"""Search settings get one set of rules, from flags and from a task file's ``search:`` block alike.

Every bad value below ends in exit code 2 and one ``error:`` line naming the flag or the file and
key, before any data loads; a search whose every trial failed exits non-zero with a summary.
"""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmbench.errors import ConfigError
from mmbench.search.settings import SearchSettings
from mmbench.search.trials import parse_assignments
from mmbench.search.validate import SEARCH_RULES, check_search_block
from tests.cli import run_cli as run_in_process

TASK = {
    "name": "tiny-validate",
    "data": {"provider": "synthetic", "options": {"n_samples": 120, "n_modalities": 2, "dim": 4, "noise": 0.2}},
    "label": "label",
    "split": {"validation": 0.25, "test": 0.25, "seed": 0},
    "search": {"max_epochs": 1, "patience": 1, "fusions": ["early"]},
}


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``mmbench ARGV`` in this process: (exit code, stderr)."""
    result = run_in_process(*argv)
    return result.returncode, result.stderr


def write_task(tmp_path, *, search: dict | None = None, options: dict | None = None) -> str:
    task = yaml.safe_load(yaml.safe_dump(TASK))
    task["search"].update(search or {})
    task["data"]["options"].update(options or {})
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task))
    return str(path)


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], (word, err)


@pytest.mark.parametrize("yaml_text, key", [
    ("n_trials: abc", "search.n_trials"), ("n_trials: .nan", "search.n_trials"), ("n_trials: 0", "search.n_trials"),
    ("n_trials: -5", "search.n_trials"), ("n_trials: 2.5", "search.n_trials"), ("max_epochs: .inf", "search.max_epochs"),
    ("timeout: abc", "search.timeout"), ("timeout: 0", "search.timeout"), ("fixed: s", "search.fixed"),
    ("fusions: [1, 2]", "search.fusions"), ("fixed: {train.lr: 0}", "search.fixed.train.lr"),
    ("batch_sizes: [0]", "search.batch_sizes"), ("encoders: {x1: [3]}", "search.encoders.x1"),
])
def test_a_bad_search_block_value_names_the_file_and_key(tmp_path, yaml_text, key):
    path = write_task(tmp_path, search=yaml.safe_load(yaml_text))
    code, err = run_cli(["search", path, "-q", "--n-trials", "1"])
    assert_one_line_error(code, err, "task.yaml", key)


@pytest.mark.parametrize("options, word", [
    ({"seed": -1}, "'seed'"), ({"seed": 1.5}, "'seed'"), ({"n_samples": 1000000000000}, "'n_samples'"),
    ({"noise": "abc"}, "'noise'"),
])
def test_a_bad_provider_option_is_refused_before_any_allocation(tmp_path, options, word):
    code, err = run_cli(["search", write_task(tmp_path, options=options), "-q", "--n-trials", "1"])
    assert_one_line_error(code, err, "synthetic", word)


@pytest.mark.parametrize("flags, flag", [
    (["--timeout", "nan"], "--timeout"), (["--timeout", "0"], "--timeout"), (["--n-trials", "0"], "--n-trials"),
    (["--seed", "-1"], "--seed"), (["--seed", str(2**32)], "--seed"), (["--memory-budget-gb", "nan"], "--memory-budget-gb"),
    (["--memory-budget-gb", "inf"], "--memory-budget-gb"), (["--memory-budget-gb", "1e308"], "--memory-budget-gb"),
    (["--cache-size-gb", "nan"], "--cache-size-gb"), (["--cache-size-gb", "inf"], "--cache-size-gb"),
    (["--heartbeat", "1000000000000"], "--heartbeat"), (["--storage", "sqlite://"], "--storage"),
    (["--storage", "sqlite:///"], "--storage"), (["--storage", "sqlite:///:memory:"], "--storage"),
    (["--set", "train.lr=0"], "train.lr"), (["--set", "train.max_epochs=0"], "train.max_epochs"),
    (["--set", "train.weight_decay=-1"], "train.weight_decay"),
])
def test_a_bad_flag_value_is_one_line_and_exit_2(tmp_path, flags, flag):
    code, err = run_cli(["search", write_task(tmp_path), "-q", *flags])
    assert_one_line_error(code, err, flag)


def test_flags_and_task_file_share_the_rules():
    """The same value is refused from both sources, with the same reason."""
    with pytest.raises(ConfigError) as from_flag:
        SearchSettings.of("t", timeout=math.nan)
    with pytest.raises(ConfigError) as from_file:
        check_search_block({"timeout": math.nan}, "t.yaml: search")
    assert str(from_flag.value).split(" must ")[1] == str(from_file.value).split(" must ")[1]


def test_numeric_set_values_are_numbers_and_a_refusal_says_what_was_given():
    assert parse_assignments(["train.lr=1e-3", "train.lr2=1.0e12", "train.n=1_000", "train.aux=none"]) == {
        "train.lr": 0.001, "train.lr2": 1e12, "train.n": 1000, "train.aux": "none"}


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(
    st.sampled_from(sorted(SEARCH_RULES)),
    st.one_of(st.none(), st.booleans(), st.integers(-3, 10**13), st.floats(allow_nan=True), st.text(max_size=5),
              st.lists(st.one_of(st.integers(-2, 200), st.text(max_size=4)), max_size=3),
              st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-2, 3), st.floats(), st.text(max_size=3)), max_size=2)),
    max_size=4))
def test_a_search_block_is_accepted_valid_or_refused_with_its_key(block):
    try:
        checked = check_search_block(block, "t.yaml: search")
    except ConfigError as error:
        assert str(error).startswith("t.yaml: search.") and "\n" not in str(error)
        return
    for key in ("n_trials", "max_epochs"):
        assert checked.get(key) is None or (type(checked[key]) is int and checked[key] >= 1)
    for key in ("timeout", "time_limit"):
        assert checked.get(key) is None or (math.isfinite(checked[key]) and checked[key] > 0)


def test_a_search_where_every_trial_failed_exits_non_zero_with_a_summary(tmp_path, one_torch_thread):
    """``train.lr=1e12`` makes every loss NaN: no leaderboard, a summary naming the reason, exit 1."""
    path = write_task(tmp_path)
    stores = ["--storage", f"sqlite:///{tmp_path / 'o.db'}", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]
    code, err = run_cli(["search", path, "--n-trials", "1", "--max-epochs", "2", "--set", "train.lr=1e12",
                         "--no-plots", "--device", "cpu", *stores])
    assert code == 1, err
    summary = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(summary) == 1, err
    assert "1 of 1 trials failed, none completed" in summary[0]
    assert "most common reason" in summary[0] and "training loss became nan" in summary[0]

"""The conditional space and its restrictions (task file, --fusions, --encoders, --set)."""

from __future__ import annotations

import optuna
import pytest
from typer.testing import CliRunner

from mmbench.cli.app import app
from mmbench.errors import ConfigError
from mmbench.search.study import plan_search


def _suggested(space, registry, n=12):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    out = []
    for _ in range(n):
        trial = study.ask()
        config = space.suggest(trial, registry, seed=0)
        out.append((config, dict(trial.params)))
        study.tell(trial, 0.0)
    return out


def test_only_the_chosen_components_parameters_are_suggested(tiny_task, search_settings, registry):
    plan = plan_search(search_settings(tiny_task()), registry)
    seen_fusions = set()
    for config, params in _suggested(plan.space, registry, n=16):
        seen_fusions.add(config.fusion)
        fusion_keys = {k for k in params if k.startswith("fusion.")}
        assert fusion_keys == {f"fusion.{config.fusion}.{k}" for k in registry.get_fusion(config.fusion).space}
        for modality, encoder in config.encoders.items():
            keys = {k for k in params if k.startswith(f"encoder.{modality}.")}
            short = encoder.split(".", 1)[1]
            assert keys == {f"encoder.{modality}.{short}.{k}" for k in registry.get_encoder(encoder).space}
    assert len(seen_fusions) > 1  # the draw did visit several branches


def test_restriction_flags_limit_fusions_encoders_and_fix_values(tiny_task, search_settings, registry):
    settings = search_settings(tiny_task(), fusions=["early"], encoders={"x1": ["embedding.mlp"]},
                               fixed={"train.lr": 1e-3, "fusion.early.n_layers": 1})
    plan = plan_search(settings, registry)
    for config, params in _suggested(plan.space, registry):
        assert config.fusion == "early" and config.encoders["x1"] == "embedding.mlp"
        assert config.train["lr"] == 1e-3 and config.fusion_params["n_layers"] == 1
        assert "train.lr" not in params and "fusion.early.n_layers" not in params and "fusion" not in params


def test_task_file_restrictions_apply_and_cli_overrides_them(tiny_task, search_settings, registry):
    task = tiny_task(extra="  fusions: [late]\n  fixed: {train.batch_size: 32}\n")
    plan = plan_search(search_settings(task), registry)
    assert plan.space.fusions == ["late"] and plan.space.fixed["train.batch_size"] == 32
    plan = plan_search(search_settings(task, fusions=["early"], fixed={"train.batch_size": 64}), registry)
    assert plan.space.fusions == ["early"] and plan.space.fixed["train.batch_size"] == 64


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fusions": ["erly"]}, "unknown fusion 'erly'"),
        ({"encoders": {"x1": ["text.gru"]}}, "text.gru"),
        ({"fixed": {"train.lrr": 0.1}}, "unknown parameter 'train.lrr'"),
        ({"fixed": {"train.batch_size": 7}}, "--set train.batch_size=7"),
    ],
)
def test_bad_restrictions_are_clear_errors(tiny_task, search_settings, registry, overrides, message):
    with pytest.raises(Exception, match=message.replace(".", r"\.").replace("(", r"\(")):
        plan_search(search_settings(tiny_task(), **overrides), registry)


def test_cli_restriction_flags_reach_the_recorded_trials(tiny_task, stores):
    result = CliRunner().invoke(app, [
        "search", str(tiny_task()), "--n-trials", "2", "--max-epochs", "1", "--quiet", "--no-plots", "--device", "cpu",
        "--fusions", "early", "--encoders", "x1=embedding.mlp", "--encoders", "x2=embedding.mlp", "--set", "train.lr=0.002",
        "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"],
    ])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert len(study.trials) == 2
    for trial in study.trials:
        config = trial.user_attrs["config"]
        assert config["fusion"] == "early" and set(config["encoders"].values()) == {"embedding.mlp"}
        assert config["train"]["lr"] == 0.002


def test_unknown_sampler_pruner_objective_are_config_errors(search_settings):
    with pytest.raises(ConfigError, match="unknown sampler 'tpee'"):
        search_settings("x", sampler="tpee")
    with pytest.raises(ConfigError, match="unknown pruner"):
        search_settings("x", pruner="asha")
    with pytest.raises(ConfigError, match="unknown objective 'flops'"):
        search_settings("x", objectives="metric,flops")
    with pytest.raises(ConfigError, match="--n-jobs"):
        search_settings("x", n_jobs=0)

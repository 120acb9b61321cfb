"""Presets resolve to their documented spaces; the portfolio is enqueued first, only where it fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmbench.errors import ConfigError
from mmbench.search.presets import load_presets, presets_table


def test_the_docs_show_the_presets_as_they_are():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "search.md").read_text()
    assert presets_table() in docs  # regenerate with: python -c "from mmbench.search.presets import presets_table; print(presets_table())"


@pytest.mark.parametrize("name", ["fast", "medium", "best"])
def test_a_preset_narrows_the_task_space_to_its_documented_choices(name, tiny_task, search_settings, registry):
    from mmbench.search.study import plan_search

    preset = load_presets()[name]
    plan = plan_search(search_settings(tiny_task(), preset=name), registry)
    everything = plan_search(search_settings(tiny_task(), preset="none"), registry).space
    assert plan.space.fusions == ([f for f in preset.fusions if f in everything.fusions] if preset.fusions else everything.fusions)
    for modality, allowed in everything.encoders.items():
        wanted = [e for e in preset.encoders.get("embedding", ()) if e in allowed]
        assert plan.space.encoders[modality] == (wanted or allowed)
    assert plan.space.train_defaults["max_epochs"] == (preset.max_epochs or 2)  # 2: the tiny task's own
    assert plan.preset is preset


def test_explicit_flags_win_over_the_preset(tiny_task, search_settings, registry):
    from mmbench.search.study import plan_search

    plan = plan_search(search_settings(tiny_task(), preset="fast", fusions=["tfn"], max_epochs=1,
                                       encoders={"embedding": ["embedding.gru"]}), registry)
    assert plan.space.fusions == ["tfn"] and plan.space.train_defaults["max_epochs"] == 1
    assert all(v == ["embedding.gru"] for v in plan.space.encoders.values())


def test_synthetic_tasks_get_no_preset_and_real_data_tasks_medium(tiny_task, registry, tmp_path):
    from mmbench.search.presets import preset_for
    from mmbench.tasks.files import resolve_task

    assert preset_for(resolve_task(str(tiny_task()), registry), None) is None
    assert preset_for(resolve_task("synth-mixed", registry), None) is None
    assert preset_for(resolve_task("petfinder", registry), None).name == "medium"
    own = tmp_path / "own.yaml"  # a user's own file on real data, in no suite of ours
    (tmp_path / "rows.csv").write_text("caption,label\na red car,1\na blue sky,0\n")
    own.write_text(f"name: own\ndata:\n  provider: files\n  options: {{path: [{tmp_path / 'rows.csv'}]}}\nlabel: label\n")
    assert preset_for(resolve_task(str(own), registry), None).name == "medium"
    assert preset_for(resolve_task(str(own), registry), "none") is None


def test_an_unknown_preset_is_a_config_error_naming_the_flag(search_settings, tiny_task):
    with pytest.raises(ConfigError, match=r"--preset: unknown preset 'fastest'.*fast"):
        search_settings(tiny_task(), preset="fastest")


def _entries():
    early = {"fusion": "early", "fusion_params": {"hidden": 64, "n_layers": 1, "dropout": 0.1},
             "encoders": {"embedding": "embedding.mlp"}, "encoder_params": {"embedding": {"hidden": 32, "n_layers": 1, "dropout": 0.0}},
             "train": {"lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64}, "seconds": 2.0}
    text_only = {**early, "fusion": "late", "fusion_params": {}, "encoders": {"text": "text.bow"},
                 "encoder_params": {"text": {"dim": 32}}, "seconds": 1.0}  # needs a text modality: skipped
    unknown_fusion = {**early, "fusion": "nonexistent", "seconds": 0.5}
    return [unknown_fusion, text_only, early]


def test_portfolio_entries_outside_the_space_are_skipped_and_valid_ones_become_parameters(tiny_task, search_settings, registry):
    from mmbench.search.portfolio import portfolio_params
    from mmbench.search.study import plan_search

    plan = plan_search(search_settings(tiny_task(), preset="none"), registry)
    params = portfolio_params(plan.space, plan.data.schema, registry, _entries())
    # the text-only entry fits by borrowing the cheapest embedding encoder of another entry; the unknown fusion does not
    assert len(params) == 2 and all(p["fusion"] in ("early", "late") for p in params)
    first = params[0]
    assert first["train.lr"] == 3e-3 and first["train.aux"] == "none"
    assert all(first[f"encoder.{m}"] == "embedding.mlp" for m in plan.data.schema.modalities)


def test_enqueued_portfolio_trials_run_first_and_are_not_queued_twice(tiny_task, search_settings, registry):
    import optuna

    from mmbench.search.portfolio import enqueue_portfolio, portfolio_params
    from mmbench.search.study import plan_search

    plan = plan_search(search_settings(tiny_task(), preset="none"), registry)
    params = portfolio_params(plan.space, plan.data.schema, registry, _entries())
    study = optuna.create_study(direction="maximize")
    enqueue_portfolio(study, params)
    enqueue_portfolio(study, params)  # a resume or a second worker
    assert len(study.trials) == len(params)
    trial = study.ask()
    config = plan.space.suggest(trial, registry, seed=0)
    assert config.fusion == params[0]["fusion"] and config.train["lr"] == 3e-3

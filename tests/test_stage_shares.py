"""Under --time-limit, a fine-tuning share is only held back where the space has an encoder that can
fine-tune (otherwise the search gets it: held back, it sat unused at the end of the run), and the
stage starts on CPU only with minutes to spare (there a transformer epoch takes minutes)."""

from __future__ import annotations


def test_a_space_without_fine_tunable_encoders_gives_the_finetune_share_to_the_search(tiny_task, search_settings, registry):
    from mmbench.search.presets import load_presets
    from mmbench.search.study import plan_search

    medium = load_presets()["medium"].stages
    plan = plan_search(search_settings(tiny_task(), preset="medium", time_limit=60.0), registry)
    assert medium["finetune"] > 0  # else this test shows nothing
    assert plan.budget.shares["finetune"] == 0.0
    assert plan.budget.shares["search"] == medium["search"] + medium["finetune"]
    assert plan.budget.shares["ensemble"] == medium["ensemble"]


def test_a_space_with_a_fine_tunable_encoder_keeps_the_presets_shares(tiny_task, search_settings, registry):
    from mmbench.search.presets import load_presets
    from mmbench.search.stages import stage_shares
    from mmbench.search.study import plan_search

    medium = load_presets()["medium"].stages
    space = plan_search(search_settings(tiny_task(), preset="medium"), registry).space
    space.encoders = {**space.encoders, "x1": ["text.pretrained"]}  # has a finetune hyperparameter
    assert stage_shares(medium, space, registry) == dict(medium)


def test_a_finetune_share_too_short_to_fine_tune_on_this_device_goes_to_the_search(tiny_task, search_settings, registry):
    from mmbench.search.presets import load_presets
    from mmbench.search.stages import MIN_FINETUNE_CPU_S, MIN_FINETUNE_S, stage_shares
    from mmbench.search.study import plan_search

    medium = load_presets()["medium"].stages
    space = plan_search(search_settings(tiny_task(), preset="medium"), registry).space
    space.encoders = {**space.encoders, "x1": ["text.pretrained"]}
    short = 0.9 * MIN_FINETUNE_CPU_S / medium["finetune"]  # its share: just under what a CPU needs
    on_cpu = stage_shares(medium, space, registry, time_limit=short, device="cpu")
    assert on_cpu["finetune"] == 0.0 and on_cpu["search"] == medium["search"] + medium["finetune"]
    assert short * medium["finetune"] >= MIN_FINETUNE_S  # the same seconds are enough on a GPU
    assert stage_shares(medium, space, registry, time_limit=short, device="cuda") == dict(medium)
    assert stage_shares(medium, space, registry, time_limit=1.2 * short / 0.9, device="cpu") == dict(medium)


class _Objective:
    """Stands in for mmbench's objective: which devices the trials get, and one trial's value."""

    deadline = None

    def __init__(self, slots):
        self.context = type("Context", (), {"devices": type("Pool", (), {"slots": slots})(),
                                            "space": type("Space", (), {"fixed": {}})()})()
        self.ran = []

    def __call__(self, trial):
        self.ran.append(trial.suggest_categorical("encoder.text.pretrained.finetune", [False, True]))  # the enqueued value
        return 0.5


def _frozen_study():
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.create_study(direction="maximize")
    dists = {"encoder.text.pretrained.finetune": CategoricalDistribution([False, True]), "train.lr": FloatDistribution(1e-4, 1e-1, log=True)}
    study.add_trial(optuna.trial.create_trial(params={"encoder.text.pretrained.finetune": False, "train.lr": 1e-2}, distributions=dists, value=0.8))
    return study


def test_fine_tuning_needs_minutes_on_cpu_but_not_on_a_gpu():
    from mmbench.search.budget import Budget
    from mmbench.search.stages import finetune_stage

    notes = []
    budget = Budget(400.0, shares={"search": 0.0, "finetune": 0.9, "ensemble": 0.1})  # ~357 s for fine-tuning
    cpu = _Objective(["cpu"])
    assert not finetune_stage(_frozen_study(), cpu, budget, note=notes.append) and not cpu.ran
    assert notes and "on CPU" in notes[0]
    gpu = _Objective(["cuda:0"])
    assert finetune_stage(_frozen_study(), gpu, budget, note=notes.append)
    assert gpu.ran == [True] and gpu.deadline is not None

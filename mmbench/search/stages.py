"""Stages of a search under a ``--time-limit``: the search's gate and the fine-tuning stage.

:func:`stage_timeout` gives a stage its deadline (on the objective, so a running trial stops
there) and the timeout Optuna may use, or says the stage is skipped. :func:`finetune_stage` runs
after the search when the preset's ``finetune`` share leaves time: the best configuration with a
*frozen* pretrained encoder is trained again end to end (``finetune=True``, a tenth of its learning
rate), as one more trial of the study, so it is recorded, ranked and ensembled like any other.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mmbench.search.budget import Budget

if TYPE_CHECKING:
    import optuna

    from mmbench.registry import Registry
    from mmbench.search.objective import Objective
    from mmbench.search.trials import SearchSpace

#: Fine-tuning a pretrained backbone wants a much smaller step than training a head.
FINETUNE_LR_FACTOR = 0.1
#: A fine-tuning trial needs at least this many seconds to be worth starting.
MIN_FINETUNE_S = 20.0
#: The same on CPU only: a transformer trained end to end there takes minutes an epoch (measured on
#: PetFinder, 2 shared cores: all-MiniLM-L6-v2 had not finished its first epoch after 178 s, ran
#: past its share into the ensemble's, and its partial epoch scored below the majority class).
MIN_FINETUNE_CPU_S = 600.0


def stage_shares(shares: Mapping[str, float], space: SearchSpace, registry: Registry, *, time_limit: float | None = None,
                 device: str = "auto") -> dict[str, float]:
    """The preset's stage shares, with the fine-tuning share given to the search where no encoder of
    the space can fine-tune (no ``finetune`` hyperparameter), or where that share of ``time_limit``
    is under what fine-tuning needs on ``device`` (:data:`MIN_FINETUNE_CPU_S` on a CPU): held back,
    it would only sit unused (measured: a 300 s av-digits-hard search ended 32 s early, a 120 s
    PetFinder one 14 s)."""
    if not shares.get("finetune"):
        return dict(shares)
    tunable = any("finetune" in registry.get_encoder(name).space for names in space.encoders.values() for name in names)
    needed = MIN_FINETUNE_CPU_S if _on_cpu(device) else MIN_FINETUNE_S
    if tunable and (time_limit is None or time_limit * shares["finetune"] >= needed):
        return dict(shares)
    return {**shares, "search": shares.get("search", 0.0) + shares["finetune"], "finetune": 0.0}


def _on_cpu(device: str) -> bool:
    """Whether trials on ``device`` (``--device``) run on the CPU; unlike
    :func:`mmbench.train.loop.resolve_device`, a ``cuda`` request is taken at its word (the
    device pool reports a missing GPU)."""
    if device != "auto":
        return device.startswith("cpu")
    import torch

    return not torch.cuda.is_available()


def stage_timeout(budget: Budget | None, stage: str, objective: Objective, timeout: float | None,
                  note: Callable[[str], None] | None) -> tuple[bool, float | None]:
    """``(run it, Optuna timeout)`` for ``stage``; sets ``objective.deadline`` to the stage's end."""
    if budget is None:
        return True, timeout
    objective.deadline = budget.stage_deadline(stage)
    seconds = objective.deadline - time.monotonic()
    if seconds <= 0:
        if note is not None:
            note(f"{stage} skipped: no time left of the --time-limit of {budget.time_limit:.0f} s")
        return False, None
    return True, seconds if timeout is None else min(timeout, seconds)


def finetune_params(study: optuna.Study) -> dict[str, Any] | None:
    """The best COMPLETE trial with a frozen encoder (``finetune=False``, searched or fixed), set to
    fine-tune; ``None`` if none."""
    from optuna.trial import TrialState

    from mmbench.search.attrs import CONFIG
    from mmbench.search.trials import encoder_prefix

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    for trial in sorted(done, key=lambda t: -t.values[0]):
        config = trial.user_attrs.get(CONFIG) or {}
        fixed = {f"{encoder_prefix(modality, name)}.finetune" for modality, name in config.get("encoders", {}).items()
                 if config.get("encoder_params", {}).get(modality, {}).get("finetune") is False}
        frozen = fixed | {name for name, value in trial.params.items() if name.endswith(".finetune") and value is False}
        if frozen:
            params = {**trial.params, **{name: True for name in sorted(frozen)}}
            if "train.lr" in params:
                params["train.lr"] = params["train.lr"] * FINETUNE_LR_FACTOR
            return params
    return None


def finetune_stage(study: optuna.Study, objective: Objective, budget: Budget | None, *,
                   note: Callable[[str], None] | None = None) -> bool:
    """Fine-tune the best frozen-encoder configuration end to end if the budget leaves room; True if it ran."""
    if budget is None or not budget.shares.get("finetune"):
        return False
    params = finetune_params(study)
    if params is None:
        return False
    on_cpu = all(str(slot).startswith("cpu") for slot in objective.context.devices.slots)
    needed = MIN_FINETUNE_CPU_S if on_cpu else MIN_FINETUNE_S
    if budget.stage_seconds("finetune") < needed:
        if note is not None:
            note(f"finetune skipped: under {needed:.0f} s left of the --time-limit{' (on CPU)' if on_cpu else ''}")
        return False
    run, timeout = stage_timeout(budget, "finetune", objective, None, note)
    if not run:
        return False
    fixed = objective.context.space.fixed
    frozen_by_preset = {name: fixed[name] for name in params if name.endswith(".finetune") and name in fixed}
    fixed.update({name: True for name in frozen_by_preset})  # the search froze them (presets.freeze_pretrained)
    study.enqueue_trial(params, skip_if_exists=True)
    try:
        with warnings.catch_warnings():  # the lowered learning rate may sit below the searched range, on purpose
            warnings.filterwarnings("ignore", message="Fixed parameter")
            study.optimize(objective, n_trials=1, timeout=timeout, catch=(Exception,), gc_after_trial=False)
    finally:
        fixed.update(frozen_by_preset)
    return True

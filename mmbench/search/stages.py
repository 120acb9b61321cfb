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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mmbench.search.budget import Budget

if TYPE_CHECKING:
    import optuna

    from mmbench.search.objective import Objective

#: Fine-tuning a pretrained backbone wants a much smaller step than training a head.
FINETUNE_LR_FACTOR = 0.1
#: A fine-tuning trial needs at least this many seconds to be worth starting.
MIN_FINETUNE_S = 20.0


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
    """The best COMPLETE trial with a frozen encoder's ``finetune=False``, set to fine-tune; ``None`` if none."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    for trial in sorted(done, key=lambda t: -t.values[0]):
        frozen = [name for name, value in trial.params.items() if name.endswith(".finetune") and value is False]
        if frozen:
            params = {**trial.params, **{name: True for name in frozen}}
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
    if budget.stage_seconds("finetune") < MIN_FINETUNE_S:
        if note is not None:
            note(f"finetune skipped: under {MIN_FINETUNE_S:.0f} s left of the --time-limit")
        return False
    run, timeout = stage_timeout(budget, "finetune", objective, None, note)
    if not run:
        return False
    study.enqueue_trial(params, skip_if_exists=True)
    with warnings.catch_warnings():  # the lowered learning rate may sit below the searched range, on purpose
        warnings.filterwarnings("ignore", message="Fixed parameter")
        study.optimize(objective, n_trials=1, timeout=timeout, catch=(Exception,), gc_after_trial=False)
    return True

"""Every key the search writes on Optuna trials and studies, and the objectives' vocabulary.

The storage, resume and objective modules all read these: one place, so a rename cannot
leave a reader behind.
"""

from __future__ import annotations

from mmbench.errors import ConfigError, unknown_name_message

#: Trial user attribute: the trial's configuration (``TrialConfig.to_dict()``).
CONFIG = "config"
#: Trial user attribute: the MLflow run of the trial.
RUN_ID = "mlflow_run_id"
#: Trial user attribute: the last lines of an unexpected error's traceback.
TRACEBACK = "traceback"
#: Trial user attribute marking a trial whose worker died or was interrupted (retried on resume).
INTERRUPTED = "mmbench.interrupted"
#: Trial user attribute naming the worker that runs the trial (``host:pid``).
WORKER = "mmbench.worker"
#: Trial user attribute of a re-queued trial: the number of the trial it retries.
RETRY_OF = "mmbench.retry_of"
#: Study user attribute: the MLflow parent run shared by every worker of the study.
PARENT_RUN = "mmbench.parent_run_id"
#: Study user attributes that tie a study to its task, search space and objectives.
STUDY_TASK = "mmbench.task"
STUDY_SPACE = "mmbench.space"
STUDY_OBJECTIVES = "mmbench.objectives"

#: Second objectives of ``--objectives metric,<name>`` (both minimised).
SECOND_OBJECTIVES = ("latency", "params")


def parse_objectives(text: str | None) -> tuple[str, ...]:
    """``"metric,latency"`` -> ``("metric", "latency")``; ``None`` -> ``("metric",)``.

    Raises:
        ConfigError: not ``metric`` first, or an unknown second objective.

    Example:
        >>> parse_objectives("metric, params")
        ('metric', 'params')
    """
    if not text:
        return ("metric",)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names or names[0] != "metric" or len(names) > 2:
        raise ConfigError(f"--objectives must be 'metric' or 'metric,<{'|'.join(SECOND_OBJECTIVES)}>', got '{text}'")
    if len(names) == 2 and names[1] not in SECOND_OBJECTIVES:
        raise ConfigError(f"--objectives: {unknown_name_message('objective', names[1], SECOND_OBJECTIVES)}")
    return names


def directions(objectives: tuple[str, ...], metric: str = "accuracy") -> list[str]:
    """The metric goes its way (:func:`~mmbench.train.metrics.metric_direction`: ``rmse`` down,
    ``accuracy`` up); latency and parameter count are minimised."""
    from mmbench.train.metrics import metric_direction

    return [metric_direction(metric) if name == "metric" else "minimize" for name in objectives]

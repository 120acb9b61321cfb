"""One trial of ``mmbench search``: suggest, build, train, record; return the objective values.

Kept apart from :mod:`mmbench.search.study` (which owns the study's life cycle) so the trial's steps
stay readable and a reliability layer (heartbeats, signals) can wrap them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmbench.errors import MmbenchError, one_line
from mmbench.tracking.ranking import rank_key
from mmbench.search.budget import STOPPED_TAG
from mmbench.search.attrs import CONFIG, INTERRUPTED, RUN_ID, TRACEBACK, WORKER
from mmbench.search.progress import Reporter
from mmbench.search.resume import worker_id
from mmbench.tracking.layout import TRACEBACK_FILE
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    import optuna

    from mmbench.train.features.store import FeatureCache
    from mmbench.train.folds import FoldsResult
    from mmbench.search.trials import SearchSpace, TrialConfig
    from mmbench.data.prepared import PreparedData, SplitTensors
    from mmbench.infra.devices import DevicePool
    from mmbench.train.model import MultimodalModel
    from mmbench.registry import Registry
    from mmbench.tasks.files import Task

@dataclass
class BestModel:
    """The best finished trial of this worker, kept in memory to log its model once at the end."""

    number: int
    value: float
    run_id: str
    model: MultimodalModel
    config: TrialConfig
    test: SplitTensors


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs from its search, in one object (so :class:`Objective` takes one argument)."""

    task: Task
    data: PreparedData
    space: SearchSpace
    registry: Registry
    tracker: Tracker
    experiment_id: str
    parent_run_id: str
    study_name: str
    reporter: Reporter
    seed: int
    devices: DevicePool
    objectives: tuple[str, ...] = ("metric",)
    n_trials: int = 0
    features: FeatureCache | None = None  # frozen-encoder outputs (mmbench.train.features)
    compile: bool = False  # torch.compile each trial's model


class Objective:
    """Callable for :meth:`optuna.Study.optimize`: one trial from suggestion to MLflow record.

    Thread-safe for ``--n-jobs``: trials share only the tracker (one MLflow client), the
    reporter and the best-model slot, which a lock guards.
    """

    #: ``time.monotonic()`` by which a running trial stops (``--time-limit``; the study sets it per stage).
    deadline: float | None = None
    #: trial number -> the trainer standing in for ``fit`` (its batch's, ``--batch-trials``: :mod:`mmbench.search.batched`).
    trainers: dict[int, Any]

    def __init__(self, context: TrialContext) -> None:
        self.context = context
        self.n_run = 0
        self.best: BestModel | None = None
        self._lock = threading.Lock()
        self.trainers = {}

    # -- the trial ----------------------------------------------------------------------------

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        with self.context.devices.slot() as device:  # concurrent trials: each holds a device share (mmbench.infra.devices)
            return self._run(trial, device)

    def _run(self, trial: optuna.Trial, device: str) -> float | tuple[float, float]:
        import optuna

        with self._lock:
            self.n_run += 1
        started = time.perf_counter()
        config = self.context.space.suggest(trial, self.context.registry, seed=self.context.seed + trial.number)
        trial.set_user_attr(CONFIG, config.to_dict())
        trial.set_user_attr(WORKER, worker_id())
        run_id = self._start_run(trial, config, device)
        n_fits = max(1, len(self.context.data.folds))  # split.folds: K x R fits, their epochs numbered on
        self.context.reporter.trial_started(trial.number, config.combination, int(config.train["max_epochs"]) * n_fits)
        try:
            model, result, tensors, folds = self._train(trial, config, run_id, device)
            values = self._objective_values(model, result, tensors["validation"])
        except optuna.TrialPruned as pruned:
            self._finish(trial, run_id, config, "PRUNED", None, {}, str(pruned), started)
            raise
        except BaseException as error:
            interrupted = not isinstance(error, Exception)
            if interrupted:
                trial.set_user_attr(INTERRUPTED, True)
            elif not isinstance(error, MmbenchError):
                trial.set_user_attr(TRACEBACK, traceback.format_exc()[-4000:])
                self.context.tracker.log_text(run_id, traceback.format_exc(), TRACEBACK_FILE)
            self._finish(trial, run_id, config, "KILLED" if interrupted else "FAIL", None, {}, failure_reason(error), started)
            raise
        metric = self.context.task.metric
        final = {f"val_{k}": v for k, v in result.validation.items()}
        final.update({f"test_{k}": v for k, v in result.test.items()})
        final.update({"val_score": result.validation[metric], "test_score": result.test[metric], "best_epoch": result.best_epoch})
        if result.stopped:  # the budget's deadline ended it: kept with its best epoch, and said so
            trial.set_user_attr(STOPPED_TAG, result.stopped)
            self.context.tracker.set_tags(run_id, {STOPPED_TAG: result.stopped})
        if "latency" in self.context.objectives:
            final["latency_ms"] = values[1]
        from mmbench.train.efficiency import efficiency_metrics

        final.update(efficiency_metrics(model, result, tensors["validation"]))  # cost beside accuracy, every trial
        if folds is not None:  # the means above are what ranks; the folds' spread beside them
            from mmbench.train.folds import fold_summary

            final.update(fold_summary(folds.fits))
        if self.context.data.schema.task_type == "classification":  # class probabilities: what ensembles combine
            self._store_predictions(run_id, model, tensors, folds)
        self._keep_if_best(trial.number, values[0], run_id, model, config, tensors["test"])
        self._finish(trial, run_id, config, "COMPLETE", values[0], final, None, started)
        return values[0] if len(values) == 1 else (values[0], values[1])

    def _start_run(self, trial: optuna.Trial, config: TrialConfig, device: str) -> str:
        run_id = self.context.tracker.start_trial(
            self.context.experiment_id,
            self.context.parent_run_id,
            run_name=f"trial {trial.number}: {config.combination}",
            tags=self._tags(trial, config, device),
            params=config.flat_params(),
        )
        trial.set_user_attr(RUN_ID, run_id)
        self.context.tracker.log_dict(run_id, config.to_dict(), "config.yaml")
        return run_id

    def _train(self, trial: optuna.Trial, config: TrialConfig, run_id: str,
               device: str) -> tuple[MultimodalModel, Any, dict[str, SplitTensors], FoldsResult | None]:
        import optuna

        from mmbench.train.memory import PeakMemory
        from mmbench.train.model import build_model, count_parameters, preprocessors_for
        from mmbench.train.loop import TrainSettings, fit, resolve_device

        metric = self.context.task.metric
        report_to_pruner = len(self.context.objectives) == 1  # Optuna cannot prune multi-objective trials
        folds = self.context.data.folds  # k-fold: the pruner hears the folds' running mean (steps 0..K*R-1), not epochs

        def on_epoch(report: Any) -> None:
            self.context.tracker.log_epoch(run_id, report)
            value = report.validation[metric]
            self.context.reporter.epoch_finished(trial.number, report.epoch, value)
            if report_to_pruner and not folds:
                trial.report(value, report.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {report.epoch} with val_{metric}={value:.4f}")

        def on_fold(index: int, fits: list[Any]) -> None:
            from mmbench.train.folds import fold_scores

            self.context.tracker.log_metrics(run_id, fold_scores(fits[-1], index))
            value = sum(f.validation[metric] for f in fits) / len(fits)
            if report_to_pruner:
                trial.report(value, index)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {index + 1} of {len(folds)} with mean val_{metric}={value:.4f}")

        peaks = PeakMemory.start(resolve_device(device))
        preprocessors = preprocessors_for(config, self.context.data.schema, self.context.registry)
        if self.context.features is None:
            (infos, tensors), prebuilt = self.context.data.tensors(preprocessors), {}
        else:  # frozen encoders' outputs computed once, then read from the cache
            from mmbench.train.features.compute import FeaturePassStopped

            try:
                infos, tensors, prebuilt = self.context.features.trial_inputs(
                    config, self.context.data, preprocessors, self.context.registry, deadline=self.deadline)
            except FeaturePassStopped as stopped:  # the budget ran out before training began: stopped, not broken
                trial.set_user_attr(STOPPED_TAG, "time_limit")
                raise optuna.TrialPruned(str(stopped)) from None
        if tensors["train"].streamed:  # over the memory budget: these modalities' batches come from disk
            self.context.tracker.set_tags(run_id, {f"{TAG}streamed": ",".join(tensors["train"].streamed)})

        def build() -> MultimodalModel:
            return build_model(config, infos, self.context.data.schema.n_outputs, self.context.registry, prebuilt=prebuilt,
                               target_scale=self.context.data.schema.target_scale)

        model = build()
        self.context.tracker.log_metrics(run_id, {"n_parameters": count_parameters(model)})
        settings = TrainSettings.from_config(config.train, metric=metric, seed=config.seed, device=device)
        settings = dataclasses.replace(settings, compile=self.context.compile, deadline=self.deadline)
        try:
            if folds:
                from mmbench.train.folds import fit_folds

                unused = [model]  # the first fold trains the model built above; the others build their own

                def fresh() -> MultimodalModel:
                    return unused.pop() if unused else build()

                outcome = fit_folds(fresh, tensors, folds, settings, n_classes=self.context.data.schema.n_outputs, on_epoch=on_epoch,
                                    on_fold=on_fold, probabilities=self.context.data.schema.task_type == "classification")
                return outcome.model, outcome.result, {**tensors, "validation": outcome.validation}, outcome
            trainer = self.trainers.get(trial.number, fit)
            result = trainer(model, tensors, settings, n_classes=self.context.data.schema.n_outputs, on_epoch=on_epoch)
        finally:  # pruned and failed trials get their peaks too
            self.context.tracker.log_metrics(run_id, peaks.metrics())
        return model, result, tensors, None

    def _objective_values(self, model: MultimodalModel, result: Any, validation: SplitTensors) -> tuple[float, ...]:
        value = float(result.validation[self.context.task.metric])
        if len(self.context.objectives) == 1:
            return (value,)
        if self.context.objectives[1] == "params":
            return (value, float(result.n_parameters))
        return (value, latency_ms(model, validation))

    # -- bookkeeping --------------------------------------------------------------------------

    def _keep_if_best(self, number: int, value: float, run_id: str, model: MultimodalModel, config: TrialConfig,
                      test: SplitTensors) -> None:
        with self._lock:
            metric = self.context.task.metric
            if self.best is None or rank_key(value, number, metric) > rank_key(self.best.value, self.best.number, metric):
                self.best = BestModel(number, value, run_id, model, config, test)

    def _store_predictions(self, run_id: str, model: MultimodalModel, tensors: dict[str, SplitTensors],
                           folds: FoldsResult | None = None) -> None:
        """Validation and test probabilities on the run, so ensembles reuse the trial without retraining it
        (k-fold: out-of-fold probabilities of train + validation, and the folds' mean on test)."""
        from mmbench.tracking.predictions import RunPredictions, log_predictions
        from mmbench.train.loop import predict_logits

        def proba(split: SplitTensors) -> Any:
            return predict_logits(model, split).softmax(dim=1).cpu().numpy()

        if folds is not None:
            if folds.oof_proba is not None:  # not when the time limit cut the folds short
                log_predictions(self.context.tracker, run_id, RunPredictions(
                    self.context.data.fingerprint, folds.oof_proba, folds.oof_labels, folds.test_proba, tensors["test"].labels.cpu().numpy()))
            return
        validation, test = tensors["validation"], tensors["test"]
        log_predictions(self.context.tracker, run_id, RunPredictions(
            self.context.data.fingerprint, proba(validation), validation.labels.cpu().numpy(), proba(test), test.labels.cpu().numpy()))

    def _tags(self, trial: optuna.Trial, config: TrialConfig, device: str) -> dict[str, str]:
        tags = {
            f"{TAG}task": self.context.task.name,
            f"{TAG}study": self.context.study_name,
            f"{TAG}trial": str(trial.number),
            f"{TAG}fusion": config.fusion,
            f"{TAG}combination": config.combination,
            f"{TAG}metric": self.context.task.metric,
            f"{TAG}objectives": ",".join(self.context.objectives),
            f"{TAG}seed": str(config.seed),
            f"{TAG}device": device,
            f"{TAG}fingerprint": self.context.data.fingerprint,
            f"{TAG}worker": worker_id(),
        }
        tags.update({f"{TAG}encoder.{m}": e for m, e in config.encoders.items()})
        return tags

    def _finish(self, trial: optuna.Trial, run_id: str, config: TrialConfig, state: str, value: float | None,
                metrics: dict[str, float], reason: str | None, started: float) -> None:
        metrics = {**metrics, "duration_s": time.perf_counter() - started}
        self.context.tracker.log_metrics(run_id, metrics)
        self.context.tracker.finish(run_id, state, reason=reason)
        if reason:
            trial.set_user_attr("reason", reason)
        self.context.reporter.trial_finished(trial.number, state, value, self._best_value(trial.study, value), reason)
        result = {**metrics, **({"reason": reason} if reason else {})}
        self.context.registry.manager.hook.mmbench_trial_finished(
            task=self.context.task.name, study_name=self.context.study_name, trial_number=trial.number, state=state,
            config=config.to_dict(), result=result,
        )

    def _best_value(self, study: optuna.Study, value: float | None) -> float | None:
        """The best value so far in the metric's direction (the lowest RMSE, the highest accuracy)."""
        from optuna.trial import TrialState

        from mmbench.train.metrics import metric_sign

        known = [t.values[0] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
        known += [value] if value is not None else []
        sign = metric_sign(self.context.task.metric)
        return max(known, key=lambda v: sign * v) if known else None


def latency_ms(model: MultimodalModel, split: SplitTensors, *, batch_size: int = 256) -> float:
    """Inference milliseconds per example on ``split``, batched, timed after one warm-up pass."""
    from mmbench.train.loop import predict_logits

    predict_logits(model, split, batch_size=batch_size)
    started = time.perf_counter()
    predict_logits(model, split, batch_size=batch_size)
    return (time.perf_counter() - started) * 1000 / max(1, len(split))


def failure_reason(error: BaseException) -> str:
    """One line for the run's ``mmbench.reason`` tag (exception type named unless a user error)."""
    text = one_line(error)
    if not isinstance(error, MmbenchError):
        text = f"{type(error).__name__}: {text}"
    return text[:500]

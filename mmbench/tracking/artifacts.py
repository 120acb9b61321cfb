"""Artifacts written at the end of a search: the best model, its confusion matrix, study plots.

Written once per search (not per trial) so they cost the default ``mmbench search`` about a
second: the best trial's model in MLflow's PyTorch flavour plus a pickle-free
``model/weights.safetensors`` (what ``mmbench reproduce``/``predict`` reload, together with
``config.yaml``), a confusion-matrix PNG on the test split, and Optuna's optimisation history,
parameter importances and parallel-coordinate plots (PNG via matplotlib; plotly is not needed).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmbench.tracking.layout import CONFUSION_FILE
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    import optuna
    import torch

    from mmbench.search.objective import BestModel

logger = logging.getLogger(__name__)

#: Artifact folder of the best trial's model.
MODEL_DIR = "model"


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def log_best_model(tracker: Tracker, best: BestModel, class_names: Sequence[str]) -> None:
    """Log the best trial's model (PyTorch flavour + safetensors) and confusion matrix on its run.

    A model that cannot be pickled (a plugin class defined in ``__main__``) still gets its
    safetensors weights; the failure is recorded as the tag ``mmbench.model_error``.
    """
    import torch

    from mmbench.train.loop import predict_logits

    model = best.model.to("cpu").eval()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / MODEL_DIR
        try:
            _save_pytorch_flavour(model, folder)
        except Exception as error:  # pickling a user's class can fail in many ways
            tracker.set_tags(best.run_id, {f"{TAG}model_error": f"{type(error).__name__}: {error}"[:500]})
            folder.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(_unshare(state), str(folder / "weights.safetensors"), metadata={"combination": best.config.combination})
        tracker.log_artifacts(best.run_id, str(folder), MODEL_DIR)
    tracker.set_tags(best.run_id, {f"{TAG}best": "true"})
    if not class_names or best.test.labels.dim() == 2:  # regression, multi-label: no confusion matrix
        return
    test = best.test if best.test.labels.device.type == "cpu" else _cpu(best.test)
    predicted = predict_logits(model, test).argmax(dim=1)
    n = len(class_names)
    matrix = torch.bincount(test.labels.long() * n + predicted, minlength=n * n).reshape(n, n)
    tracker.log_dict(best.run_id, {"classes": list(class_names), "matrix": matrix.tolist()}, "confusion_matrix.json")
    figure = confusion_figure(matrix.tolist(), class_names, title=f"trial {best.number} (test split)")
    tracker.log_figure(best.run_id, figure, CONFUSION_FILE)
    _pyplot().close(figure)


def _save_pytorch_flavour(model: torch.nn.Module, folder: Path) -> None:
    import mlflow.pytorch

    mlflow_logger = logging.getLogger("mlflow.pytorch")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)  # the pickle-format caution is expected here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pytorch.save_model(model, str(folder), pip_requirements=["torch", "mmbench"], serialization_format="pickle")
    finally:
        mlflow_logger.setLevel(level)


def _unshare(state: dict) -> dict:
    """safetensors refuses tensors sharing memory (tied weights): give each its own copy."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        out[key] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


def _cpu(split):  # noqa: ANN001, ANN202
    from mmbench.data.prepared import SplitTensors

    inputs = {m: {k: v.cpu() for k, v in t.items()} for m, t in split.inputs.items()}
    return SplitTensors(inputs, split.labels.cpu())


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str], *, title: str):  # noqa: ANN201
    """A labelled confusion-matrix heat map (rows: true class, columns: predicted)."""
    plt = _pyplot()
    n = len(class_names)
    figure, axis = plt.subplots(figsize=(2 + 0.5 * n, 1.5 + 0.5 * n))
    axis.imshow(matrix, cmap="Blues")
    labels = [str(c)[:12] for c in class_names]
    axis.set_xticks(range(n), labels, rotation=45, ha="right")
    axis.set_yticks(range(n), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                axis.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=7)
    figure.tight_layout()
    return figure


def log_study_plots(tracker: Tracker, run_id: str, study: optuna.Study) -> list[str]:
    """Optimisation history (Pareto front when multi-objective), parameter importances and
    parallel coordinates as PNGs on the study's parent run; plots that need more finished
    trials than there are are skipped.

    Returns:
        The artifact names written.
    """
    import optuna.visualization.matplotlib as vis
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    multi = len(study.directions) > 1
    target = (lambda t: t.values[0]) if multi else None
    plots = {
        "plots/pareto_front.png" if multi else "plots/optimization_history.png":
            (lambda: vis.plot_pareto_front(study)) if multi else (lambda: vis.plot_optimization_history(study)),
        "plots/param_importances.png": lambda: vis.plot_param_importances(study, target=target),
        "plots/parallel_coordinate.png": lambda: vis.plot_parallel_coordinate(study, target=target),
    }
    plt = _pyplot()
    written = []
    for name, draw in plots.items():
        if name == "plots/param_importances.png" and len(complete) < 2:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(9, 5)
            figure.tight_layout()
            tracker.log_figure(run_id, figure, name)
            plt.close(figure)
            written.append(name)
        except Exception as error:  # a plot needing a shape the study lacks must not fail the search
            logger.debug("skipped %s: %s", name, error)
            plt.close("all")
    return written

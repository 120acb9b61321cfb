"""Validation and test probabilities of a finished run, stored as one compact ``.npz`` artifact.

Every finished trial (and every classical baseline) writes them, so an ensemble can be built
later from what the search already paid for, without retraining anything. Rows are in the
split's order; the data fingerprint names which split that is, so runs of other data are
never mixed. Labels travel with the probabilities (an ensemble can then be built without
reloading the data); selection reads only the validation ones.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmbench.tracking.layout import PREDICTIONS_FILE

if TYPE_CHECKING:
    import numpy as np

    from mmbench.tracking.tracker import Tracker


@dataclass
class RunPredictions:
    """One run's class probabilities and the labels of the rows they are for.

    Attributes:
        fingerprint: data fingerprint of the task's split (which rows, in which order).
        val_proba: ``(n_validation, n_classes)`` probabilities.
        val_labels: ``(n_validation,)`` class indices.
        test_proba: ``(n_test, n_classes)`` probabilities.
        test_labels: ``(n_test,)`` class indices.
    """

    fingerprint: str
    val_proba: np.ndarray
    val_labels: np.ndarray
    test_proba: np.ndarray
    test_labels: np.ndarray


def log_predictions(tracker: Tracker, run_id: str, predictions: RunPredictions) -> None:
    """Write ``predictions.npz`` (float32 probabilities, int64 labels) on the run."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PREDICTIONS_FILE
        np.savez_compressed(
            path, fingerprint=np.array(predictions.fingerprint),
            val_proba=np.asarray(predictions.val_proba, dtype=np.float32), val_labels=np.asarray(predictions.val_labels, dtype=np.int64),
            test_proba=np.asarray(predictions.test_proba, dtype=np.float32), test_labels=np.asarray(predictions.test_labels, dtype=np.int64),
        )
        tracker.log_artifact(run_id, str(path))


def load_predictions(tracker: Tracker, run_id: str) -> RunPredictions | None:
    """The run's stored predictions, or ``None`` when it has none (older runs, failed trials)."""
    import os

    import numpy as np

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file per run: no progress bars
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = tracker.download_artifact(run_id, PREDICTIONS_FILE, tmp)
        except Exception:  # noqa: BLE001 - artifact stores raise different types for a missing file
            return None
        with np.load(local, allow_pickle=False) as stored:
            return RunPredictions(str(stored["fingerprint"]), stored["val_proba"], stored["val_labels"],
                                  stored["test_proba"], stored["test_labels"])

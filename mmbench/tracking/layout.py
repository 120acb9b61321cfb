"""How mmbench lays out its MLflow store: default URIs, tag prefix, run roles, artifact names.

Every reader and writer of the store uses these names, so the layout is documented (and
changed) in one place. This module imports nothing, so settings and the CLI can use the
defaults without loading MLflow.
"""

#: Defaults of ``--tracking-uri`` and ``--storage``: embedded SQLite files in the working folder.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_STORAGE = "sqlite:///optuna.db"

#: Prefix of every mmbench tag (``mmbench.role``, ``mmbench.task``, ...).
TAG = "mmbench."
#: Values of the ``mmbench.role`` tag: the study's parent run and its trials' child runs.
ROLE_STUDY = "study"
ROLE_TRIAL = "trial"
#: An ensemble of finished runs (:mod:`mmbench.search.ensemble_stage`) and a classical baseline
#: model (:mod:`mmbench.search.classical_stage`): both are leaderboard rows beside the trials.
ROLE_ENSEMBLE = "ensemble"
ROLE_CLASSICAL = "classical"
#: A unimodal baseline of the best configuration (:mod:`mmbench.runs.evaluation.baselines`): no rank, only the fusion gain.
ROLE_BASELINE = "baseline"

#: Artifacts of a trial run.
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model/weights.safetensors"
CONFUSION_FILE = "confusion_matrix.png"
#: The traceback of a trial that failed with an unexpected error (the console shows one line).
TRACEBACK_FILE = "traceback.txt"
#: Validation and test class probabilities of a finished run (:mod:`mmbench.tracking.predictions`).
PREDICTIONS_FILE = "predictions.npz"
#: Members and weights of an ensemble run.
ENSEMBLE_FILE = "ensemble.json"
#: Artifacts of a study's parent run.
TASK_FILE = "task.yaml"
DATA_NOTES_FILE = "data_notes.json"

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

#: Artifacts of a trial run.
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model/weights.safetensors"
CONFUSION_FILE = "confusion_matrix.png"
#: Artifacts of a study's parent run.
TASK_FILE = "task.yaml"
DATA_NOTES_FILE = "data_notes.json"

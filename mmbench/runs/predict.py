"""Use a recorded model on new rows: ``mmbench predict RUN_ID DATA_FILE --output F``.

The best trial of a search logs its weights (``model/weights.safetensors``, pickle-free) next to
``config.yaml``. The model is rebuilt from the configuration, the preprocessors refitted on the
task's train split (deterministic, so the new rows are tokenised and scaled exactly as in
training) and the weights loaded. A run without weights (not the best trial) is retrained
from its configuration and seed when ``retrain`` allows, else it is a clear error.

New rows come from a ``.csv`` or ``.jsonl`` file with the task's modality columns (an
embedding or other list-valued column is a JSON list in a csv cell); the label column is
optional and, when present, lets :func:`labelled_split` score them. A multi-label model decides
each label with the threshold its trial tuned on validation (run metric ``val_threshold``), the
one its test scores were computed with, and every record says which threshold it used.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError, DataError, TrackingError
from mmbench.tracking.layout import ROLE_CLASSICAL, TAG
from mmbench.runs.reproduce import RunSource, build, download_artifact, train_config

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import torch

    from mmbench.data.prepared import SplitTensors
    from mmbench.train.model import MultimodalModel
    from mmbench.registry import Registry
    from mmbench.tracking.tracker import Tracker

from mmbench.tracking.layout import WEIGHTS_FILE
FORMATS = (".csv", ".jsonl")


def load_model(tracker: Tracker, source: RunSource, registry: Registry, *, retrain: bool = True,
               device: str = "cpu", on_retrain: Callable[[str], None] | None = None) -> MultimodalModel:
    """The run's trained model: its logged weights, else (``retrain``) retrained from its config.

    Raises:
        TrackingError: no weights were logged and ``retrain`` is false.
    """
    import tempfile

    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifact(tracker, source.run_id, WEIGHTS_FILE, tmp)
        if local is not None:
            model = build(source, registry)
            state = load_file(local)
            try:
                model.load_state_dict(state)
            except RuntimeError as error:
                raise TrackingError(f"run '{source.run_id}': {WEIGHTS_FILE} does not fit its config.yaml ({str(error).splitlines()[0]})") from None
            return model.eval()
    if not retrain:
        raise TrackingError(
            f"run '{source.run_id}' has no {WEIGHTS_FILE} (only a search's best trial logs its model); "
            "retrain it with `mmbench reproduce` or allow retraining"
        )
    if on_retrain is not None:
        on_retrain(f"run {source.run_id} has no logged weights; retraining it from its config (seed {source.config.seed})")
    model, _ = train_config(source.config, source.task, source.data, source.infos, source.tensors, registry, device=device)
    return model.to("cpu").eval()


def read_rows(path: str | Path, features: datasets.Features) -> list[dict[str, Any]]:
    """Rows of a ``.csv`` / ``.jsonl`` file; csv cells are typed by the train split's ``features``."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ConfigError(f"{path}: expected a {' or '.join(FORMATS)} file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}, line {number}: not JSON ({error.msg})") from None
        return rows
    return [{k: _typed_cell(path, k, v, features) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]


def _typed_cell(path: Path, column: str, value: str, features: datasets.Features) -> Any:
    import datasets

    feature = features.get(column)
    if feature is None or value == "":
        return None if value == "" else value
    if isinstance(feature, datasets.Value):
        if feature.dtype.startswith(("float", "int")):
            try:
                number = float(value)
            except ValueError:
                raise DataError(f"{path}: column '{column}': {value!r} is not a number") from None
            return int(number) if feature.dtype.startswith("int") and number.is_integer() else number
        return value
    try:
        return json.loads(value)  # lists (embeddings, sequences) are JSON in a csv cell
    except json.JSONDecodeError:
        raise DataError(f"{path}: column '{column}': expected a JSON list, got {value[:40]!r}") from None


def rows_dataset(path: str | Path, source: RunSource) -> tuple[datasets.Dataset, bool]:
    """The file's rows as a dataset with the train split's column types; and whether labels are present."""
    import datasets

    train = source.data.splits["train"]
    needed = [c for m in source.config.encoders for c in source.data.schema.modalities[m].columns]
    label = source.data.schema.label
    rows = read_rows(path, train.features)
    if not rows:
        raise DataError(f"{path}: no rows")
    for column in needed:
        if column not in rows[0]:
            raise DataError(f"{path}: column '{column}' (modality of run {source.run_id}) is missing; columns: {', '.join(rows[0])}")
    labelled = all(row.get(label) not in (None, "") for row in rows)
    keep = needed + ([label] if labelled else [])
    features = datasets.Features({c: train.features[c] for c in keep})
    try:
        dataset = datasets.Dataset.from_list([{c: row.get(c) for c in keep} for row in rows], features=features)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: rows do not match the task's column types ({str(error).splitlines()[0][:200]})") from None
    return dataset, labelled


def transform_rows(source: RunSource, dataset: datasets.Dataset, registry: Registry) -> dict[str, dict[str, torch.Tensor]]:
    """The configuration's preprocessors, refitted on train, applied to new rows."""
    from mmbench.train.model import preprocessors_for
    from mmbench.runs.reproduce import restrict_schema

    train = source.data.splits["train"]
    inputs = {}
    for modality, preprocessor in preprocessors_for(source.config, restrict_schema(source.data.schema, source.config), registry).items():
        preprocessor.fit(train)
        inputs[modality] = preprocessor.transform(dataset)
    return inputs


def labelled_split(source: RunSource, path: str | Path, registry: Registry) -> tuple[SplitTensors, bool]:
    """A file's rows as :class:`SplitTensors` (labels ``-1`` when the file has none)."""
    import torch

    from mmbench.data.prepared import SplitTensors

    dataset, labelled = rows_dataset(path, source)
    inputs = transform_rows(source, dataset, registry)
    if source.data.schema.task_type == "multilabel":  # multi-hot; a file without labels gets none
        from mmbench.data.prepared import multi_hot

        values = dataset[source.data.schema.label] if labelled else [[] for _ in range(len(dataset))]
        labels = multi_hot([v if isinstance(v, list) else str(v).split(source.task.label_delimiter or "|") for v in values],
                           source.data.schema.classes)
    elif labelled and source.data.schema.task_type == "regression":
        labels = torch.tensor([float(v) for v in dataset[source.data.schema.label]], dtype=torch.float32)
    elif labelled:
        index = {name: i for i, name in enumerate(source.data.schema.classes)}
        values = [str(v) for v in dataset[source.data.schema.label]]
        unknown = sorted({v for v in values if v not in index})
        if unknown:
            raise DataError(f"{path}: label value(s) {', '.join(unknown[:5])} are not classes of task '{source.task.name}'")
        labels = torch.tensor([index[v] for v in values], dtype=torch.long)
    else:
        labels = torch.full((len(dataset),), -1, dtype=torch.long)
    return SplitTensors(inputs, labels), labelled


#: A multi-label run without a recorded ``val_threshold`` (recorded before thresholds were tuned) decides at this.
DEFAULT_THRESHOLD = 0.5


def decision_threshold(run: Any) -> tuple[float, str]:
    """The multi-label decision threshold a run tuned on validation (:func:`mmbench.train.loop.fit`)
    and the metric it came from: a k-fold run's saved model is its last fold's, so that fold's
    (``val_threshold_fold<k>``, not the folds' mean); :data:`DEFAULT_THRESHOLD` when none is recorded."""
    metrics = run.data.metrics
    last_fold = f"val_threshold_fold{int(metrics['n_folds']) - 1}" if metrics.get("n_folds") else None
    for name in (last_fold, "val_threshold"):
        if name in metrics:
            return float(metrics[name]), name
    return DEFAULT_THRESHOLD, ""


def predict_rows(model: MultimodalModel, split: SplitTensors, classes: Sequence[str], *,
                 threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, Any]]:
    """One record per row: predicted class, its probability and every class's probability (a
    regression model: the predicted value, in the target's units; multi-label: the labels whose
    probability reaches ``threshold``, the threshold, and each label's probability)."""
    from mmbench.train.loop import predict_logits

    if getattr(model, "target_scale", None) is not None:
        return [{"row": row, "prediction": value} for row, value in enumerate(predict_logits(model, split)[:, 0].tolist())]
    if split.labels.dim() == 2:  # multi-label: every label at or above the threshold, and each label's probability
        records = []
        for row, probs in enumerate(predict_logits(model, split).sigmoid().tolist()):
            chosen = "|".join(name for name, p in zip(classes, probs) if p >= threshold)
            records.append({"row": row, "prediction": chosen, "threshold": threshold, **{f"p_{name}": p for name, p in zip(classes, probs)}})
        return records
    return probability_records(predict_logits(model, split).softmax(dim=1).tolist(), classes)


def probability_records(probabilities: Sequence[Sequence[float]], classes: Sequence[str]) -> list[dict[str, Any]]:
    """One record per row of class probabilities: predicted class, its probability, every class's."""
    records = []
    for row, probs in enumerate(probabilities):
        best = max(range(len(probs)), key=probs.__getitem__)
        record: dict[str, Any] = {"row": row, "prediction": classes[best], "probability": probs[best]}
        record.update({f"p_{name}": p for name, p in zip(classes, probs)})
        records.append(record)
    return records


def write_records(records: Sequence[dict[str, Any]], output: str | Path) -> Path:
    """Write records as ``.csv`` or ``.jsonl`` (by the output's extension)."""
    output = Path(output)
    if output.suffix not in FORMATS:
        raise ConfigError(f"--output {output}: expected a {' or '.join(FORMATS)} file")
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".jsonl":
        output.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        with output.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]) if records else ["row", "prediction"])
            writer.writeheader()
            writer.writerows(records)
    return output


def predict_file(tracker: Tracker, run_id: str, data_file: str | Path, output: str | Path, registry: Registry, *,
                 data_root: Path | None = None, retrain: bool = True, on_retrain: Callable[[str], None] | None = None,
                 on_note: Callable[[str], None] | None = None) -> tuple[Path, int]:
    """Predict every row of ``data_file`` with the run's model; returns the output path and row count
    (``on_note`` hears which decision threshold a multi-label model used)."""
    from mmbench.runs.reproduce import load_source

    for given, flag in ((Path(data_file), "DATA_FILE"), (Path(output), "--output")):
        if given.suffix not in FORMATS:
            raise ConfigError(f"{flag} {given}: expected a {' or '.join(FORMATS)} file")
    if not Path(data_file).is_file():
        raise DataError(f"{data_file}: file not found")
    from mmbench.runs.reproduce import get_run, is_ensemble

    run = get_run(tracker, run_id)
    if is_ensemble(run):  # members' probabilities averaged with the ensemble's weights
        classes, probabilities = predict_ensemble(tracker, run, data_file, registry, data_root=data_root, retrain=retrain,
                                                  on_retrain=on_retrain)
        records = probability_records(probabilities.tolist(), classes)
        return write_records(records, output), len(records)
    source = load_source(tracker, run_id, registry, data_root=data_root)
    model = load_model(tracker, source, registry, retrain=retrain, on_retrain=on_retrain)
    split, _ = labelled_split(source, data_file, registry)
    threshold, metric = decision_threshold(source.run)
    if source.data.schema.task_type == "multilabel" and on_note is not None:
        on_note(f"multi-label decision threshold {threshold:g}: "
                + (f"tuned on validation (run metric {metric})" if metric else "none tuned was recorded"))
    records = predict_rows(model, split, source.data.schema.classes, threshold=threshold)
    return write_records(records, output), len(records)


# -- ensembles: each member's probabilities, averaged with its weight -----------------------------
# A trial member is loaded as any run (its weights, else retrained from its config and seed); a
# classical member (mmbench.train.classical) is refitted on the train split, which is deterministic.


def predict_ensemble(tracker: Tracker, run: Any, data_file: str | Path, registry: Registry, *, data_root: Path | None = None,
                     retrain: bool = True, on_retrain: Callable[[str], None] | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """The task's classes and the ensemble's ``(n_rows, n_classes)`` probabilities for the file's rows."""
    from mmbench.runs.reproduce import get_run
    from mmbench.search.ensemble import combine
    from mmbench.search.ensemble_stage import ensemble_record

    probabilities, weights, classes = [], [], ()
    for entry in ensemble_record(tracker, run)["members"]:
        member_id, weight = entry["run_id"], float(entry["weight"])
        member = get_run(tracker, member_id)
        if member.data.tags.get(f"{TAG}role") == ROLE_CLASSICAL:
            classes, proba = _classical_proba(tracker, member, data_file, registry, data_root=data_root)
        else:
            classes, proba = _trial_proba(tracker, member_id, data_file, registry, data_root=data_root, retrain=retrain,
                                          on_retrain=on_retrain)
        probabilities.append(proba)
        weights.append(weight)
    return classes, combine(probabilities, weights)


def _trial_proba(tracker: Tracker, run_id: str, data_file: str | Path, registry: Registry, *, data_root: Path | None,
                 retrain: bool, on_retrain: Callable[[str], None] | None) -> tuple[tuple[str, ...], np.ndarray]:
    from mmbench.runs.reproduce import load_source
    from mmbench.train.loop import predict_logits

    source = load_source(tracker, run_id, registry, data_root=data_root)
    model = load_model(tracker, source, registry, retrain=retrain, on_retrain=on_retrain)
    split, _ = labelled_split(source, data_file, registry)
    return tuple(source.data.schema.classes), predict_logits(model, split).softmax(dim=1).numpy()


def _classical_proba(tracker: Tracker, run: Any, data_file: str | Path, registry: Registry, *,
                     data_root: Path | None) -> tuple[tuple[str, ...], np.ndarray]:
    import datasets

    from mmbench.runs.reproduce import run_task
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.classical import fit_classical

    data = load_task_data(run_task(tracker, run, registry), registry, root=data_root)
    name = run.data.tags.get(f"{TAG}classical", "")
    grown = run.data.params.get("classical.n_estimators")  # a --time-limit may have cut the fit: refit the same size
    fitted = fit_classical(name, data, seed=int(run.data.params.get("seed", 0)), n_estimators=None if grown is None else int(grown))
    train = data.splits["train"]
    rows = read_rows(data_file, train.features)
    missing = [c for c in fitted.columns.all if rows and c not in rows[0]]
    if not rows or missing:
        raise DataError(f"{data_file}: {'no rows' if not rows else 'column ' + ', '.join(missing) + ' (read by ' + name + ') is missing'}")
    features = datasets.Features({c: train.features[c] for c in fitted.columns.all})
    dataset = datasets.Dataset.from_list([{c: row.get(c) for c in fitted.columns.all} for row in rows], features=features)
    return tuple(data.schema.classes), fitted.predict_proba(dataset, len(rows))


__all__ = ["DEFAULT_THRESHOLD", "WEIGHTS_FILE", "decision_threshold", "labelled_split", "load_model", "predict_ensemble", "predict_file", "predict_rows", "probability_records", "write_records"]

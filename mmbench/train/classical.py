"""Classical baseline models on a task's own split: majority class, LightGBM, CatBoost, random
forest, extremely randomised trees, TF-IDF + logistic regression.

They keep a search honest: a multimodal model that does not beat a gradient-boosted-trees model
on the tabular columns (text as n-gram counts) or a linear model on TF-IDF text features is not
worth its cost; and, being unlike the neural trials and unlike each other (boosted, bagged and
randomised trees, a linear model), they are the ensemble's most useful members on tables
(measured on PetFinder beside AutoGluon, whose bagged forests score close to its boosted trees
and whose CatBoost is its strongest single model: ``benchmarks/vs_peers.py``). Each is a
scikit-learn estimator over a pandas frame of the task's tabular, text and embedding columns
(image, audio and video columns are not read), fitted on train, early-stopped (the boosted trees)
on validation, and deterministic, so ``mmbench predict`` can refit one exactly. Unlike
:mod:`mmbench.runs.evaluation.baselines` (unimodal *neural* baselines for the fusion gain), these
are separate models and ensemble members.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import pandas as pd

    from mmbench.data.prepared import PreparedData
    from mmbench.data.schema import Schema

#: The classical models, in the order they are fitted: cheap ones first, then the stronger of the
#: costlier ones (on PetFinder: CatBoost before the forests, the random forest before the extra trees).
CLASSICAL_MODELS = ("majority", "tfidf_logreg", "lightgbm", "catboost", "random_forest", "extra_trees")
#: Trees of each forest, and how many are grown between two looks at the deadline.
FOREST_TREES = 300
FOREST_CHUNK = 50
#: LightGBM's most boosting rounds (early stopping usually ends it long before).
LIGHTGBM_ROUNDS = 2000
#: CatBoost's most boosting rounds, and its learning rate (early stopping usually ends it after a few hundred).
CATBOOST_ROUNDS = 2000
CATBOOST_LEARNING_RATE = 0.1
#: The boosted trees stop when validation loss has not improved for this many rounds.
EARLY_STOPPING_ROUNDS = 50
#: Most frequent word n-grams per text column given to LightGBM as counts.
TREE_TEXT_FEATURES = 2000


@dataclass
class Columns:
    """The columns a classical model reads, by how it treats them."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    embedding: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.text, *self.embedding]


@dataclass
class ClassicalFit:
    """A fitted classical model and its probabilities on validation and test."""

    name: str
    model: Any
    columns: Columns
    val_proba: np.ndarray
    test_proba: np.ndarray
    seconds: float
    params: dict[str, Any]

    n_classes: int = 0

    def predict_proba(self, dataset: datasets.Dataset, n_rows: int) -> np.ndarray:
        """``(n_rows, n_classes)`` probabilities of new rows (a dataset with the model's columns)."""
        table = frame(dataset, self.columns) if self.columns.all else _placeholder(n_rows)
        return _proba(self.model, table, self.n_classes)


def columns_of(schema: Schema, train: datasets.Dataset) -> Columns:
    """Tabular columns split into numeric and categorical; text and embedding columns."""
    import datasets

    found = Columns()
    for info in schema.modalities.values():
        for column in info.columns:
            feature = train.features.get(column)
            if info.kind == "text":
                found.text.append(column)
            elif info.kind == "embedding":
                found.embedding.append(column)
            elif info.kind == "tabular":  # declared categorical in the task (info.extra), else by the column's type
                numeric = isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "float", "bool"))
                declared = column in set(info.extra.get("categorical", ()))
                (found.numeric if numeric and not declared else found.categorical).append(column)
    return found


def frame(dataset: datasets.Dataset, columns: Columns) -> pd.DataFrame:
    """The model's columns as a frame: text with missing values as ``""``, categories as strings,
    each embedding dimension its own numeric column."""
    import numpy as np
    import pandas as pd

    parts = {c: pd.to_numeric(pd.Series(dataset[c]), errors="coerce").astype("float64") for c in columns.numeric}
    parts.update({c: pd.Series([("" if v is None else str(v)) for v in dataset[c]], dtype=object) for c in columns.categorical + columns.text})
    table = pd.DataFrame(parts, index=pd.RangeIndex(len(dataset)))  # one row per example even with no columns (audio/image tasks)
    for column in columns.embedding:
        vectors = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in dataset[column]])
        table = pd.concat([table, pd.DataFrame(vectors, columns=[f"{column}[{i}]" for i in range(vectors.shape[1])])], axis=1)
    return table


def _embedding_columns(table: pd.DataFrame, columns: Columns) -> list[str]:
    return [c for c in table.columns if any(c.startswith(f"{e}[") for e in columns.embedding)]


def applicable(name: str, columns: Columns) -> bool:
    """Whether the model has columns to read (the majority class always has)."""
    if name == "tfidf_logreg":
        return bool(columns.text or columns.numeric or columns.categorical)
    if name == "catboost":  # text is left to the others: CatBoost's own text features cost it 10x the time on PetFinder
        return bool(columns.numeric or columns.categorical or columns.embedding)
    return name == "majority" or bool(columns.all)


def split_frames(data: PreparedData, columns: Columns) -> dict[str, pd.DataFrame]:
    """Every split's :func:`frame`: build it once for several models (1.4 s on PetFinder)."""
    return {split: frame(data.splits[split], columns) for split in ("train", "validation", "test")}


def fit_classical(name: str, data: PreparedData, *, seed: int = 0, n_jobs: int | None = None, deadline: float | None = None,
                  n_estimators: int | None = None, tables: Mapping[str, pd.DataFrame] | None = None) -> ClassicalFit | None:
    """Fit one classical model on ``data``'s train split; ``None`` when it has no columns to read.

    Args:
        deadline: a ``time.monotonic()`` value: the boosted trees stop adding rounds and a forest adding
            trees there (``--time-limit``); ``params["n_estimators"]`` then says how many it has.
        n_estimators: rounds or trees to fit (default: the full count), so a model the deadline
            cut refits exactly (``mmbench predict``: the boosted trees are deterministic, and a forest's
            first trees do not depend on how many follow).
        tables: :func:`split_frames` of ``data``, when the caller already has them.

    Raises:
        ValueError: ``name`` is not one of :data:`CLASSICAL_MODELS`.
    """
    if name not in CLASSICAL_MODELS:
        raise ValueError(f"unknown classical model {name!r}; known: {', '.join(CLASSICAL_MODELS)}")
    columns = columns_of(data.schema, data.splits["train"])
    if not applicable(name, columns):
        return None
    started = time.perf_counter()
    tables = dict(tables) if tables is not None else split_frames(data, columns)
    labels = {split: data.labels(split).numpy() for split in ("train", "validation")}
    n_classes = len(data.schema.classes)
    threads = n_jobs or max(1, min(4, os.cpu_count() or 1))
    if name == "majority":
        model, params = _majority(labels["train"], n_classes), {}
    elif name == "lightgbm":
        model, params = _lightgbm(tables, labels, columns, n_classes, seed=seed, n_jobs=threads, deadline=deadline,
                                  n_estimators=n_estimators)
    elif name == "catboost":
        model, params = _catboost(tables, labels, columns, seed=seed, n_jobs=threads, deadline=deadline, n_estimators=n_estimators)
    elif name in ("extra_trees", "random_forest"):
        model, params = _forest(name, tables, labels, columns, seed=seed, n_jobs=threads, deadline=deadline,
                                n_estimators=n_estimators)
    else:
        model, params = _tfidf_logreg(tables, labels, columns, seed=seed)
    return ClassicalFit(name, model, columns, _proba(model, tables["validation"], n_classes),
                        _proba(model, tables["test"], n_classes), time.perf_counter() - started, params, n_classes)


def _proba(model: Any, table: pd.DataFrame, n_classes: int) -> np.ndarray:
    """Probabilities with one column per task class (a class absent from train gets 0)."""
    import numpy as np

    proba = model.predict_proba(table)
    full = np.zeros((len(table), n_classes), dtype=np.float64)
    full[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    return full


def _majority(train_labels: np.ndarray, n_classes: int) -> Any:
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier(strategy="prior")
    return model.fit(_placeholder(len(train_labels)), train_labels)


def _placeholder(n_rows: int) -> Any:
    import numpy as np

    return np.zeros((n_rows, 1))


def _lightgbm(tables: dict[str, pd.DataFrame], labels: dict[str, np.ndarray], columns: Columns, n_classes: int,
              *, seed: int, n_jobs: int, deadline: float | None, n_estimators: int | None) -> tuple[Any, dict[str, Any]]:
    """Default-ish LightGBM on numeric + ordinal-coded categorical + n-gram counts, early-stopped on
    validation, and at ``deadline``."""
    import lightgbm
    from sklearn.pipeline import Pipeline

    from mmbench.train.loop import past_deadline

    features = _tree_features(tables["train"], columns, impute=False)
    train = features.fit_transform(tables["train"]).astype("float32")
    validation = features.transform(tables["validation"]).astype("float32")
    n_numeric = len(features.transformers[0][2])
    categorical = list(range(n_numeric, n_numeric + len(columns.categorical)))
    params = {"n_estimators": n_estimators or LIGHTGBM_ROUNDS, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 10,
              "colsample_bytree": 0.8, "subsample": 0.8, "subsample_freq": 1}
    model = lightgbm.LGBMClassifier(**params, random_state=seed, n_jobs=n_jobs, verbose=-1, deterministic=True,
                                    force_row_wise=True)
    history: dict[str, Any] = {}
    rounds = [0]

    def stop_at_deadline(env: Any) -> None:
        """Past the deadline, end training as early stopping would, at the best round so far."""
        rounds[0] = env.iteration + 1
        if past_deadline(deadline):
            losses = next(iter(next(iter(history.values())).values()))
            best = min(range(len(losses)), key=losses.__getitem__)
            raise lightgbm.callback.EarlyStopException(best, env.evaluation_result_list)

    stop_at_deadline.order = 40  # type: ignore[attr-defined] # after record_evaluation (20) and early stopping (30)
    with warnings.catch_warnings():  # LightGBM 4.7 renames eval_set; the old name works on every 4.x
        warnings.filterwarnings("ignore", message=".*eval_set.*deprecated")
        model.fit(train, labels["train"], eval_set=[(validation, labels["validation"])], categorical_feature=categorical or "auto",
                  callbacks=[lightgbm.record_evaluation(history), lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False),
                             stop_at_deadline])
    if rounds[0] < params["n_estimators"] and past_deadline(deadline):
        params["n_estimators"] = rounds[0]  # what a refit must grow to be this model
    params["best_iteration"] = int(model.best_iteration_ or params["n_estimators"])
    return Pipeline([("features", features), ("lightgbm", model)]), params


def _catboost(tables: dict[str, pd.DataFrame], labels: dict[str, np.ndarray], columns: Columns,
              *, seed: int, n_jobs: int, deadline: float | None, n_estimators: int | None) -> tuple[Any, dict[str, Any]]:
    """CatBoost on numeric, categorical (its ordered target statistics: on PetFinder's breeds and
    states 3.7 test points above LightGBM's category splits) and embedding columns, early-stopped on
    validation, and at ``deadline``."""
    import catboost
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from mmbench.train.loop import past_deadline

    read = ColumnTransformer([("columns", "passthrough", columns.numeric + columns.categorical + _embedding_columns(tables["train"], columns))],
                             verbose_feature_names_out=False).set_output(transform="pandas")
    train, validation = read.fit_transform(tables["train"]), read.transform(tables["validation"])
    params = {"n_estimators": n_estimators or CATBOOST_ROUNDS, "learning_rate": CATBOOST_LEARNING_RATE, "depth": 6}
    # always configured for the full count: CatBoost's model depends on it, so a cut fit is refit by
    # stopping the same configuration after as many rounds, never by asking for fewer
    model = catboost.CatBoostClassifier(iterations=CATBOOST_ROUNDS, learning_rate=params["learning_rate"], depth=params["depth"],
                                        loss_function="MultiClass", random_seed=seed, thread_count=n_jobs, od_type="Iter",
                                        od_wait=EARLY_STOPPING_ROUNDS, use_best_model=True, cat_features=columns.categorical,
                                        verbose=0, allow_writing_files=False)

    class Stop:
        """CatBoost's callback protocol: ``False`` ends training (at the best round so far: ``use_best_model``)."""

        rounds = 0

        def after_iteration(self, info: Any) -> bool:
            self.rounds = info.iteration
            return self.rounds < params["n_estimators"] and not past_deadline(deadline)

    stop = Stop()
    model.fit(train, labels["train"], eval_set=(validation, labels["validation"]), callbacks=[stop])
    if stop.rounds < params["n_estimators"] and past_deadline(deadline):
        params["n_estimators"] = stop.rounds  # what a refit must grow to be this model
    params["best_iteration"] = int(model.get_best_iteration() or 0) + 1
    return Pipeline([("columns", read), ("catboost", model)]), params


def _tree_features(train: pd.DataFrame, columns: Columns, *, impute: bool) -> Any:
    """Numeric and embedding columns as they are (median-imputed for the forests), categories as
    ordinal codes (unknown or missing: -1), text as word 1-2-gram counts."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OrdinalEncoder

    numeric = SimpleImputer(strategy="median", keep_empty_features=True) if impute else "passthrough"
    parts: list[tuple[str, Any, Any]] = [("numeric", numeric, columns.numeric + _embedding_columns(train, columns))]
    if columns.categorical:
        parts.append(("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                                   encoded_missing_value=-1), columns.categorical))
    parts += [(f"text:{c}", CountVectorizer(ngram_range=(1, 2), min_df=2, max_features=TREE_TEXT_FEATURES), c) for c in columns.text]
    return ColumnTransformer(parts, sparse_threshold=0.3 if columns.text else 0.0)


def _forest(name: str, tables: dict[str, pd.DataFrame], labels: dict[str, np.ndarray], columns: Columns,
            *, seed: int, n_jobs: int, deadline: float | None, n_estimators: int | None) -> tuple[Any, dict[str, Any]]:
    """A random forest (entropy splits) or extremely randomised trees (Gini) on the trees' features;
    bagged rather than boosted, so their errors differ from LightGBM's. Trees are grown
    :data:`FOREST_CHUNK` at a time (``warm_start``: the same trees as one fit) until ``deadline``."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.pipeline import Pipeline

    from mmbench.train.loop import past_deadline

    total = n_estimators or FOREST_TREES
    criterion = "entropy" if name == "random_forest" else "gini"
    forest = (RandomForestClassifier if name == "random_forest" else ExtraTreesClassifier)(
        n_estimators=min(FOREST_CHUNK, total), criterion=criterion, max_features="sqrt", random_state=seed, n_jobs=n_jobs,
        warm_start=True)
    features = _tree_features(tables["train"], columns, impute=True)
    train = features.fit_transform(tables["train"])
    forest.fit(train, labels["train"])
    while forest.n_estimators < total and not past_deadline(deadline):
        forest.n_estimators = min(forest.n_estimators + FOREST_CHUNK, total)
        forest.fit(train, labels["train"])
    params = {"n_estimators": forest.n_estimators, "criterion": criterion, "max_features": "sqrt"}
    return Pipeline([("features", features), (name, forest)]), params  # fitted step by step: train is transformed once


def _tfidf_logreg(tables: dict[str, pd.DataFrame], labels: dict[str, np.ndarray], columns: Columns,
                  *, seed: int) -> tuple[Any, dict[str, Any]]:
    """TF-IDF word 1-2-grams per text column beside scaled numeric and one-hot categorical columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from threadpoolctl import threadpool_limits

    parts: list[tuple[str, Any, Any]] = []
    numeric = columns.numeric + _embedding_columns(tables["train"], columns)
    if numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()), numeric))
    if columns.categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=2), columns.categorical))
    parts += [(f"text:{c}", TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50_000, sublinear_tf=True), c)
              for c in columns.text]
    params = {"C": 1.0, "max_iter": 1000}
    model = Pipeline([("features", ColumnTransformer(parts)), ("logreg", LogisticRegression(**params, random_state=seed))])
    with threadpool_limits(limits=1, user_api="blas"):  # on a shared CPU, threaded BLAS made this fit 8x slower
        return model.fit(tables["train"], labels["train"]), params

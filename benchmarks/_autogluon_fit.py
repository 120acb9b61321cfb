"""Fit AutoGluon Tabular on the split files ``vs_peers.py`` writes; run by AutoGluon's own interpreter.

AutoGluon lives in a separate virtual environment (its pins would fight mmbench's), so this script
imports neither mmbench nor torch: it reads ``train.csv``, ``validation.csv``, ``test.csv`` and
``columns.json`` from FOLDER (the rows of the task's own split), fits with ``time_limit=BUDGET``
and the validation rows as tuning data, and writes ``proba_validation.csv``, ``proba_test.csv``
(one column per class index) and ``fit.json`` (fit seconds, models trained, best model).

    /work/agvenv/bin/python benchmarks/_autogluon_fit.py FOLDER BUDGET
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

LABEL = "__label__"


def read(folder: Path, split: str, spec: dict) -> pd.DataFrame:
    """One split with the column types ``vs_peers.py`` declared (CSV alone would turn categories into numbers)."""
    strings = spec["categorical"] + spec["text"]
    table = pd.read_csv(folder / f"{split}.csv", dtype={c: str for c in strings})
    for column in strings:
        table[column] = table[column].fillna("")
    for column in spec["categorical"]:
        table[column] = table[column].astype("category")
    for column in spec["numeric"]:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def main(folder: Path, budget: float) -> None:
    from autogluon.tabular import TabularPredictor

    spec = json.loads((folder / "columns.json").read_text())
    tables = {split: read(folder, split, spec) for split in ("train", "validation", "test")}
    problem = "binary" if spec["n_classes"] == 2 else "multiclass"
    started = time.perf_counter()
    predictor = TabularPredictor(label=LABEL, path=str(folder / "ag"), verbosity=0, eval_metric="accuracy",
                                 problem_type=problem).fit(tables["train"], tuning_data=tables["validation"], time_limit=budget)
    seconds = time.perf_counter() - started
    for split in ("validation", "test"):
        proba = predictor.predict_proba(tables[split].drop(columns=[LABEL]))
        proba.columns = [str(int(c)) for c in proba.columns]
        proba.to_csv(folder / f"proba_{split}.csv", index=False)
    models = predictor.model_names()
    (folder / "fit.json").write_text(json.dumps({"seconds": seconds, "models": len(models), "best": predictor.model_best}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))

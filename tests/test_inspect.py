"""`mmbench inspect`: the data's columns, modalities, splits, classes, groups and duplicates, before compute."""

from __future__ import annotations

import csv
import subprocess
import sys

import datasets

from mmbench.data.inspection import identifier_warnings


def test_identifier_like_columns_are_warned_about_unless_declared():
    split = datasets.Dataset.from_dict({"zipcode": [10000 + i for i in range(30)], "product_id": [f"p{i % 9}" for i in range(30)],
                                        "serial": [5000 + 3 * i for i in range(30)], "age": [20 + i % 10 for i in range(30)]})
    kinds = {"zipcode": "numeric", "product_id": "categorical", "serial": "numeric", "age": "numeric"}
    warned = identifier_warnings(split, kinds, declared={})
    assert [line.split("'")[1] for line in warned] == ["zipcode", "product_id", "serial"]
    assert "every row holds a different whole number" in warned[2]
    assert identifier_warnings(split, kinds, declared={"zipcode": "numeric", "product_id": "categorical", "serial": "numeric"}) == []


def test_inspect_prints_columns_splits_classes_groups_and_duplicates(tmp_path):
    rows = [{"event": f"e{i % 8}", "review": f"the food at place {i % 8} was {'great' if i % 3 else 'bad'} today",
             "stars": i % 5, "zipcode": 10000 + i, "label": "pos" if i % 3 else "neg"} for i in range(96)]
    with open(tmp_path / "reviews.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "task.yaml").write_text("name: reviews\ndata:\n  provider: files\n  options: {path: reviews.csv}\n"
                                        "label: label\nsplit: {group_column: event, validation: 0.25, test: 0.25}\n")
    result = subprocess.run([sys.executable, "-m", "mmbench.cli", "inspect", str(tmp_path / "task.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "column 'review': text (inferred from its values)" in out
    assert "column 'event': group (split.group_column (not a feature))" in out
    assert "text [text: review]" in out and "tabular [tabular: stars, zipcode]" in out
    sizes = dict(part.split() for part in out.split("splits: ")[1].splitlines()[0].split(", "))
    assert sum(int(v) for v in sizes.values()) == 96
    assert "train classes: pos" in out and "test classes:" in out
    assert "distinct 'event' values, none shared between splits" in out
    # each event's reviews repeat: 16 groups of identical text, kept on one side with their event
    assert "duplicates: 16 groups of identical content (96 rows), 0 with conflicting labels, 0 crossing splits; kept on one side" in out
    assert "warning: column 'zipcode' was inferred numeric" in out

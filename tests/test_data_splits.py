"""Splits (stratified, group-safe, seeded) and the data fingerprint."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmbench.data.prepare import DataSpec, prepare
from mmbench.data.provider import RawData
from mmbench.data.splits import SplitSpec, group_split, stratified_split


def test_stratified_split_keeps_class_proportions_and_covers_every_row():
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    parts = stratified_split(labels, SplitSpec(validation=0.2, test=0.2, seed=0))
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(100))
    for name, rows in parts.items():
        counts = pd.Series([labels[i] for i in rows]).value_counts(normalize=True)
        assert abs(counts["a"] - 0.6) < 0.05 and abs(counts["c"] - 0.1) < 0.05, name


def test_seeds_reproduce_splits_and_different_seeds_differ():
    labels = [i % 3 for i in range(90)]
    first = stratified_split(labels, SplitSpec(seed=7))
    again = stratified_split(labels, SplitSpec(seed=7))
    other = stratified_split(labels, SplitSpec(seed=8))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["test"], other["test"])


@pytest.mark.parametrize("seed", range(5))
def test_no_group_on_two_sides_of_a_split(seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 25, size=300).astype(str)
    parts = group_split(groups, SplitSpec(seed=seed, group_column="g"))
    sides = {name: set(groups[rows]) for name, rows in parts.items()}
    assert (
        not (sides["train"] & sides["validation"])
        and not (sides["train"] & sides["test"])
        and not (sides["validation"] & sides["test"])
    )
    assert sum(len(rows) for rows in parts.values()) == 300


def _raw(values, labels):
    return RawData(splits={"all": datasets.Dataset.from_dict({"x": values, "label": labels})}, modalities={"x": "numeric"})


def test_fingerprint_changes_when_one_cell_changes_and_is_stable_otherwise():
    values, labels = [float(i) for i in range(40)], [i % 2 for i in range(40)]
    spec = DataSpec(label="label")
    base = prepare(_raw(values, labels), spec).fingerprint
    assert prepare(_raw(values, labels), spec).fingerprint == base
    changed = list(values)
    changed[17] = 99.0
    assert prepare(_raw(changed, labels), spec).fingerprint != base
    assert prepare(_raw(values, labels), DataSpec(label="label", split=SplitSpec(seed=1))).fingerprint != base


def test_fingerprint_follows_image_content_not_location(tmp_path):
    def make(folder, bright_row):
        folder.mkdir()
        for i in range(12):
            Image.fromarray(np.full((4, 4), 250 if i == bright_row else i, dtype=np.uint8), mode="L").save(folder / f"{i}.png")
        frame = datasets.Dataset.from_dict({"image": [f"{i}.png" for i in range(12)], "label": [i % 2 for i in range(12)]})
        return RawData(splits={"all": frame}, base_dir=folder)

    spec = DataSpec(label="label")
    here = prepare(make(tmp_path / "a", 3), spec).fingerprint
    moved = prepare(make(tmp_path / "b", 3), spec).fingerprint
    edited = prepare(make(tmp_path / "c", 4), spec).fingerprint
    assert here == moved, "moving the data folder keeps the fingerprint"
    assert here != edited, "editing one image changes it"

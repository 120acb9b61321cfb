"""Grouped splits sized by rows and stratified by label, the split check, group columns that stay
features, and the duplicate probe."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from PIL import Image

from mmbench.data.duplicates import content_keys, duplicate_clusters, normalise_text
from mmbench.data.preprocess.base import default_preprocessor
from mmbench.data.prepare import DataSpec, prepare
from mmbench.data.provider import RawData
from mmbench.data.splits import SplitSpec
from mmbench.errors import DataError

# 15 events of very unequal size; events 9..14 are single-class ("fake" only or "real" only)
_SIZES = [240, 130, 90, 70, 60, 50, 40, 35, 30, 25, 20, 15, 15, 10, 10]


def _events() -> tuple[list[str], list[str]]:
    groups, labels = [], []
    for event, size in enumerate(_SIZES):
        for row in range(size):
            groups.append(f"event{event}")
            if event >= 12:
                labels.append("fake")
            elif event >= 9:
                labels.append("real")
            else:
                labels.append("fake" if row % 3 == 0 else "real")
    return groups, labels


def _raw(columns: dict, **kwargs) -> RawData:
    return RawData(splits={"all": datasets.Dataset.from_dict(columns)}, **kwargs)


@pytest.mark.parametrize("seed", range(3))
def test_grouped_split_of_unequal_groups_is_sized_by_rows_and_holds_every_class(seed):
    groups, labels = _events()
    values = [float(i) for i in range(len(groups))]
    spec = DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(seed=seed, group_column="event"))
    data = prepare(_raw({"x": values, "event": groups, "label": labels}), spec)
    total = len(groups)
    for name, wanted in {"validation": 0.15, "test": 0.15, "train": 0.7}.items():
        split = data.splits[name]
        assert abs(split.num_rows / total - wanted) < 0.05, (name, split.num_rows)
        assert set(split["label"]) == {"fake", "real"}, name
    sides = [set(data.splits[name]["event"]) for name in ("train", "validation", "test")]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


def test_impossible_grouped_split_is_an_error_naming_groups_and_fixes():
    # class "rare" lives in one event only: it cannot be on all three sides
    groups = [f"g{i % 6}" for i in range(120)]
    labels = ["rare" if g == "g0" else ("a" if i % 2 else "b") for i, g in enumerate(groups)]
    columns = {"x": [float(i) for i in range(120)], "g": groups, "label": labels}
    spec = DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(group_column="g"))
    with pytest.raises(DataError, match=r"no row of class\(es\) [^;]*'rare'.*its groups: g.*split.allow_missing_classes: true"):
        prepare(_raw(columns), spec)


def test_missing_class_is_accepted_when_allowed():
    groups = [f"g{i % 6}" for i in range(120)]
    labels = ["rare" if g == "g0" else ("a" if i % 2 else "b") for i, g in enumerate(groups)]
    columns = {"x": [float(i) for i in range(120)], "g": groups, "label": labels}
    split = SplitSpec(group_column="g", allow_missing_classes=True)
    data = prepare(_raw(columns), DataSpec(label="label", modalities={"x": "numeric"}, split=split))
    assert "rare" in data.schema.classes


def test_a_split_far_from_its_size_is_an_error():
    # one group holds 90 % of the rows: no grouping gives train 70 %
    groups = ["big"] * 180 + [f"small{i % 4}" for i in range(20)]
    columns = {"x": [float(i) for i in range(200)], "g": groups, "label": [i % 2 for i in range(200)]}
    with pytest.raises(DataError, match=r"split '(train|validation|test)' has \d+ rows \(\d+% of 200, requested \d+%\)"):
        prepare(_raw(columns), DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(group_column="g")))


def _images(folder, n_distinct: int, copies: int) -> list[str]:
    """``n_distinct`` images, each written ``copies`` times under different names."""
    folder.mkdir(exist_ok=True)
    paths = []
    for image in range(n_distinct):
        for copy in range(copies):
            name = f"{image}-{copy}.png"
            Image.fromarray(np.full((4, 4, 3), image * 7 % 256, dtype=np.uint8)).save(folder / name)
            paths.append(name)
    return paths


def test_grouping_by_an_image_column_declared_as_a_modality_keeps_the_image(tmp_path):
    paths = _images(tmp_path, 12, 2)
    columns = {"image": paths, "x": [float(i) for i in range(24)], "label": [i // 2 % 2 for i in range(24)]}
    spec = DataSpec(label="label", modalities={"image": "image", "x": "numeric"}, split=SplitSpec(group_column="image"))
    data = prepare(_raw(columns, base_dir=tmp_path), spec)
    assert "image" in data.schema.modalities
    info = data.schema.modalities["image"]
    _, tensors = data.modality("image", default_preprocessor(info))
    assert tensors["train"]["pixels" if "pixels" in tensors["train"] else next(iter(tensors["train"]))].shape[0] == data.splits["train"].num_rows


def test_duplicate_probe_counts_copies_and_keeps_each_group_on_one_side(tmp_path):
    paths = _images(tmp_path, 20, 3)  # 20 images, each three times: 20 duplicate groups
    texts = [f"caption {i}" for i in range(60)]
    texts[1] = "  CAPTION 0 "  # same text as row 0 after normalising: joins image 0's group anyway
    texts[59] = "Caption 3"  # row 59 (image 19) and row 3 (image 1) share a text: one group of six
    labels = [(i // 3) % 2 for i in range(60)]
    labels[2] = 1 - labels[2]  # image 0's copies disagree on the label
    columns = {"image": paths, "caption": texts, "label": labels}
    spec = DataSpec(label="label", modalities={"image": "image", "caption": "text"}, split=SplitSpec(seed=3))
    data = prepare(_raw(columns, base_dir=tmp_path), spec)
    report = data.notes["duplicates"]
    assert report["groups"] == 19 and report["rows"] == 60
    assert report["label_conflicts"] == 1 and report["grouped"] is True and report["crossing_splits"] == 0
    sides = {name: {path.split("/")[-1].split("-")[0] for path in data.splits[name]["image"]} for name in data.splits}
    assert not (sides["train"] & sides["validation"]) and not (sides["train"] & sides["test"]) and not (sides["validation"] & sides["test"])


def test_group_duplicates_false_lets_copies_cross_and_the_probe_says_so(tmp_path):
    paths = _images(tmp_path, 20, 3)
    columns = {"image": paths, "label": [(i // 3) % 2 for i in range(60)]}
    spec = DataSpec(label="label", modalities={"image": "image"}, split=SplitSpec(seed=0, group_duplicates=False))
    report = prepare(_raw(columns, base_dir=tmp_path), spec).notes["duplicates"]
    assert report["groups"] == 20 and report["grouped"] is False and report["crossing_splits"] > 0


def test_text_keys_are_normalised_and_clusters_are_transitive():
    assert normalise_text("  Hello \n World ") == "hello world"
    split = datasets.Dataset.from_dict({"t": ["a b", "A  b", "c", "d"], "u": ["x", "y", "y", "z"]})
    clusters = duplicate_clusters(content_keys(split, {"t": "text", "u": "text"}), 4)
    assert clusters[0] == clusters[1] == clusters[2] != clusters[3]

"""The built-in providers (files, folders, paired) load each modality from files the tests write,
and a short search runs on them (with throwaway encoders, so only the data layer is under test)."""

from __future__ import annotations

import gzip
import json
import types

import numpy as np
import pytest
import soundfile
import torch
import yaml
from PIL import Image

from mmbench import Encoded, Encoder, hookimpl
from mmbench.tasks.loading import load_task_data
from mmbench.data.preprocess.base import default_preprocessor
from mmbench.errors import ConfigError
from mmbench.tasks.files import load_task_file


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))


def write_png(path, value, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8), mode="L").save(path)


def write_wav(path, freq, rate=4000, seconds=0.05):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def task_file(tmp_path, data, label="label", **extra):
    content = {"name": "t", "data": data, "label": label, "split": {"validation": 0.25, "test": 0.25, "seed": 1}, **extra}
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(content))
    return load_task_file(path)


def load(task, registry, root=None):
    return load_task_data(task, registry, root=root)


# ---------------------------------------------------------------- throwaway encoders


def _flat(kind, key):
    class Flat(Encoder):
        name = f"{kind}.testflat"
        modality = kind
        space = {}

        def __init__(self, info):
            super().__init__(info)
            width = {
                "image": lambda: info.channels * info.image_size[0] * info.image_size[1],
                "video": lambda: info.n_frames * 3 * info.image_size[0] * info.image_size[1],
                "audio": lambda: info.n_samples,
                "text": lambda: info.seq_len,
                "tabular": lambda: info.n_numeric + len(info.cardinalities),
            }[kind]()
            self.proj = torch.nn.Linear(width, 8)
            self.out_dim = 8

        def forward(self, batch):
            if kind == "tabular":
                x = torch.cat([batch["numeric"], batch["categorical"].float()], dim=1)
            else:
                x = batch[key].float().flatten(1)
            return Encoded(pooled=self.proj(x))

    return Flat


_KEYS = {"image": "pixels", "audio": "waveform", "text": "ids", "tabular": "numeric", "video": "frames"}
THROWAWAY = types.SimpleNamespace(mmbench_encoders=hookimpl(lambda: [_flat(kind, key) for kind, key in _KEYS.items()]))


@pytest.fixture
def flat_registry():
    from mmbench.registry import load_registry

    return load_registry(extra_plugins=[("testflat", THROWAWAY)])


def short_search(task_path, registry, stores, modalities, root=None):
    from mmbench.search import SearchSettings, run_search

    settings = SearchSettings.of(
        task=str(task_path),
        n_trials=2,
        max_epochs=1,
        data_root=root,
        fusions=["early"],
        encoders={m: [f"{kind}.testflat"] for m, kind in modalities.items()},
        **stores,
    )
    return run_search(settings, registry=registry)


# ---------------------------------------------------------------- files


@pytest.mark.slow
def test_files_csv_with_image_audio_text_and_tabular_columns_then_a_search(tmp_path, flat_registry, stores):
    rows = []
    for i in range(24):
        label = i % 2
        write_png(tmp_path / "img" / f"{i}.png", 200 * label + i)
        write_wav(tmp_path / "wav" / f"{i}.wav", 300 + 500 * label)
        rows.append(
            {
                "image": f"img/{i}.png",
                "audio": f"wav/{i}.wav",
                "review": f"{'good great fine' if label else 'bad awful poor'} item {i}",
                "colour": ["red", "blue"][label],
                "price": float(i),
                "label": label,
            }
        )
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    task = task_file(tmp_path, {"provider": "files", "options": {"path": "data.csv"}})
    data = load(task, flat_registry)
    assert {name: info.kind for name, info in data.schema.modalities.items()} == {
        "image": "image",
        "audio": "audio",
        "text": "text",
        "tabular": "tabular",
    }
    assert data.split_sizes == {"train": 12, "validation": 6, "test": 6}
    for name, info in data.schema.modalities.items():
        fitted, tensors = data.modality(name, default_preprocessor(info))
        assert all(len(t) == 12 for t in tensors["train"].values())
    outcome = short_search(
        tmp_path / "task.yaml", flat_registry, stores, {"image": "image", "audio": "audio", "text": "text", "tabular": "tabular"}
    )
    assert outcome.n_complete == 2


def test_files_one_file_per_split_jsonl_and_parquet(tmp_path, registry):
    import pandas as pd

    def frame(n, offset):
        return pd.DataFrame(
            {"vec": [[float(i), float(-i)] for i in range(offset, offset + n)], "label": [i % 2 for i in range(n)]}
        )

    frame(10, 0).to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    frame(4, 100).to_parquet(tmp_path / "val.parquet")
    frame(4, 200).to_json(tmp_path / "test.jsonl", orient="records", lines=True)
    task = task_file(
        tmp_path, {"provider": "files", "options": {"train": "train.jsonl", "validation": "val.parquet", "test": "test.jsonl"}}
    )
    data = load(task, registry)
    assert data.split_sizes == {"train": 10, "validation": 4, "test": 4}
    assert data.schema.modalities["embedding"].kind == "embedding"


def test_files_options_are_checked(tmp_path, registry):
    task = task_file(tmp_path, {"provider": "files", "options": {"train": "a.csv"}})
    with pytest.raises(ConfigError, match="missing: test, validation"):
        load(task, registry)


# ---------------------------------------------------------------- folders


def test_imagefolder_class_per_folder_and_provided_split_layout(tmp_path, registry):
    for cls, value in (("cat", 10), ("dog", 240)):
        for i in range(6):
            write_png(tmp_path / "flat" / cls / f"{i}.png", value)
            for split in ("train", "val", "test"):
                write_png(tmp_path / "split" / split / cls / f"{i}.png", value)
    flat = load(task_file(tmp_path, {"provider": "imagefolder", "options": {"path": str(tmp_path / "flat")}}), registry)
    assert flat.schema.classes == ("cat", "dog") and sum(flat.split_sizes.values()) == 12
    split = load(task_file(tmp_path, {"provider": "folders", "options": {"path": str(tmp_path / "split")}}), registry)
    assert split.split_sizes == {"train": 12, "validation": 12, "test": 12}
    info, tensors = split.modality("image", default_preprocessor(split.schema.modalities["image"]))
    assert tensors["test"]["pixels"].shape == (12, 1, 8, 8)


def test_audiofolder(tmp_path, registry):
    for cls, freq in (("low", 200), ("high", 1500)):
        for i in range(4):
            write_wav(tmp_path / "a" / cls / f"{i}.wav", freq)
    data = load(task_file(tmp_path, {"provider": "audiofolder", "options": {"path": str(tmp_path / "a")}}), registry)
    assert data.schema.modalities["audio"].kind == "audio" and data.schema.classes == ("high", "low")


def test_video_frame_folders_through_folders_provider(tmp_path, registry):
    for cls, value in (("a", 20), ("b", 220)):
        for clip in range(4):
            for frame in range(3):
                write_png(tmp_path / "v" / cls / f"clip{clip}" / f"{frame}.png", value)
    data = load(task_file(tmp_path, {"provider": "folders", "options": {"path": str(tmp_path / "v"), "kind": "video"}}), registry)
    info, tensors = data.modality("video", default_preprocessor(data.schema.modalities["video"]))
    assert info.kind == "video" and tensors["train"]["frames"].shape[1:] == (8, 3, 8, 8)


# ---------------------------------------------------------------- paired


def make_digit_sources(tmp_path, n_audio=4, n_images=6, classes=3):
    for digit in range(classes):
        for take in range(n_audio):
            write_wav(tmp_path / "rec" / f"{digit}_{'ab'[take % 2]}_{take}.wav", 200 + 400 * digit)
    labels = np.repeat(np.arange(classes), n_images).astype(np.uint8)
    images = (labels[:, None, None] * 100 + np.zeros((1, 6, 6))).astype(np.uint8)
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "images.gz", images)
    write_idx(tmp_path / "mnist" / "labels.gz", labels)
    return {
        "audio": {"glob": "rec/*.wav", "label": r"^(\d)_", "group": r"^\d_([a-z]+)_"},
        "image": {"idx_images": "mnist/images.gz", "idx_labels": "mnist/labels.gz"},
    }


@pytest.mark.slow
def test_paired_pairs_on_the_label_with_a_fixed_seed_then_a_search(tmp_path, flat_registry, stores):
    sources = make_digit_sources(tmp_path)
    task = task_file(tmp_path, {"provider": "paired", "options": {"modalities": sources, "seed": 3}})
    first = load(task, flat_registry, root=tmp_path)
    again = load(task, flat_registry, root=tmp_path)
    assert first.fingerprint == again.fingerprint
    assert sum(first.split_sizes.values()) == 12  # min(4 recordings, 6 images) per class x 3 classes
    train = first.splits["train"]
    for row in train:
        assert row["audio"].split("/")[-1].startswith(str(row["label"]))  # the recording is of the row's digit
        assert int(np.asarray(row["image"]).mean()) == 100 * row["label"]  # so is the image
    assert "audio_group" not in first.schema.modalities  # groups are kept for splitting, not used as features
    other_seed = load(
        task_file(tmp_path, {"provider": "paired", "options": {"modalities": sources, "seed": 4}}), flat_registry, root=tmp_path
    )
    assert other_seed.fingerprint != first.fingerprint
    outcome = short_search(tmp_path / "task.yaml", flat_registry, stores, {"audio": "audio", "image": "image"}, root=tmp_path)
    assert outcome.n_complete == 2


def test_paired_group_column_keeps_speakers_apart(tmp_path, registry):
    sources = make_digit_sources(tmp_path, n_audio=6)
    for take in range(6, 9):
        for digit in range(3):
            write_wav(tmp_path / "rec" / f"{digit}_c_{take}.wav", 200)
    sources["audio"]["group"] = r"^\d_([a-z]+)_"
    content = {
        "name": "t",
        "data": {"provider": "paired", "options": {"modalities": sources}},
        "label": "label",
        "split": {"validation": 0.3, "test": 0.3, "group_column": "audio_group"},
    }
    (tmp_path / "g.yaml").write_text(json.dumps(content))
    data = load(load_task_file(tmp_path / "g.yaml"), registry, root=tmp_path)
    speakers = {name: set(split["audio_group"]) for name, split in data.splits.items()}
    assert all(len(s) == 1 for s in speakers.values()) and len(set.union(*speakers.values())) == 3

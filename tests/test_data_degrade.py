"""Degradations (``data.degrade``): deterministic, seeded, applied to the data models see, and in the fingerprint."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import soundfile
from PIL import Image

from mmbench.data.media import column_items, read_audio, read_image
from mmbench.data.prepare import DataSpec, prepare
from mmbench.data.provider import RawData
from mmbench.data.splits import SplitSpec
from mmbench.errors import ConfigError
from mmbench.tasks.files import parse_task


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def raw(tmp_path):
    """30 rows: a PNG, a WAV (sine), a text and two tabular columns."""
    rng = np.random.default_rng(0)
    rows = {"image": [], "audio": [], "words": [], "age": [], "colour": [], "label": []}
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L").save(tmp_path / f"{i}.png")
        t = np.arange(800) / 8000
        soundfile.write(tmp_path / f"{i}.wav", (0.5 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 8000)
        rows["image"].append(f"{i}.png")
        rows["audio"].append(f"{i}.wav")
        rows["words"].append(" ".join(f"w{j}" for j in range(20)))
        rows["age"].append(float(i))
        rows["colour"].append(["red", "blue", "green"][i % 3])
        rows["label"].append(i % 2)
    return RawData(
        splits={"all": datasets.Dataset.from_dict(rows)}, base_dir=tmp_path, modalities={"words": "text", "colour": "categorical"}
    )


def run(raw, degrade=None, seed=0):
    spec = DataSpec(label="label", split=SplitSpec(seed=seed), degrade=degrade or {}, extra={"degrade": degrade or {}})
    return prepare(raw, spec)


def images(data, split="train"):
    return np.stack([read_image(v) for v in column_items(data.splits[split], "image")]).astype(np.float64)


def waves(data, split="train"):
    return [read_audio(v)[0] for v in column_items(data.splits[split], "audio")]


@pytest.mark.parametrize(
    "degrade",
    [
        {"image": [{"op": "pca", "remove": 0.5}]},
        {"image": [{"op": "blur", "sigma": 1.0}]},
        {"image": [{"op": "occlude", "fraction": 0.25}]},
        {"audio": [{"op": "noise", "snr_db": 0}]},
        {"audio": [{"op": "bandlimit", "high_hz": 300}]},
        {"words": [{"op": "token_dropout", "p": 0.5}]},
        {"tabular": [{"op": "mask", "p": 0.5}]},
    ],
)
def test_each_degradation_is_deterministic_and_changes_data_and_fingerprint(raw, degrade):
    clean = run(raw)
    first, again = run(raw, degrade), run(raw, degrade)
    assert first.fingerprint == again.fingerprint != clean.fingerprint
    column = {"image": "image", "audio": "audio", "words": "words", "tabular": "age"}[next(iter(degrade))]
    if column == "image":
        assert np.array_equal(images(first), images(again)) and not np.allclose(images(first), images(clean))
    elif column == "audio":
        assert all(np.array_equal(a, b) for a, b in zip(waves(first), waves(again)))
        assert not all(np.allclose(a, b) for a, b in zip(waves(first), waves(clean)))
    else:
        assert first.splits["train"][column] == again.splits["train"][column] != clean.splits["train"][column]
    assert run(raw, degrade, seed=1).fingerprint != first.fingerprint


def test_pca_keeps_the_requested_share_of_training_variance(raw):
    clean, degraded = images(run(raw)), images(run(raw, {"image": [{"op": "pca", "remove": 0.6}]}))
    kept = degraded.reshape(len(degraded), -1).var(axis=0).sum() / clean.reshape(len(clean), -1).var(axis=0).sum()
    assert 0.4 <= kept < 0.6


def test_noise_at_the_given_snr(raw):
    clean, noisy = waves(run(raw)), waves(run(raw, {"audio": [{"op": "noise", "snr_db": 6}]}))
    snr = [10 * np.log10(np.mean(c**2) / np.mean((n - c) ** 2)) for c, n in zip(clean, noisy)]
    assert abs(float(np.mean(snr)) - 6) < 0.5


def test_bandlimit_removes_high_frequencies(raw):
    limited = waves(run(raw, {"audio": [{"op": "bandlimit", "high_hz": 250}]}))
    spectrum = np.abs(np.fft.rfft(limited[-1]))
    frequencies = np.fft.rfftfreq(limited[-1].size, 1 / 8000)
    assert spectrum[frequencies > 260].max() < 1e-3 * max(spectrum.max(), 1e-9) or spectrum.max() < 1e-3


def test_token_dropout_and_mask_rates(raw):
    dropped = run(raw, {"text": [{"op": "token_dropout", "p": 0.5}]}).splits["train"]["words"]
    share = np.mean([len(text.split()) for text in dropped]) / 20
    assert 0.35 < share < 0.65
    masked = run(raw, {"tabular": [{"op": "mask", "p": 0.5}]}).splits["train"]
    missing = np.mean([v is None for column in ("age", "colour") for v in masked[column]])
    assert 0.3 < missing < 0.7


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ({"image": [{"op": "pcaa", "remove": 0.5}]}, "did you mean 'pca'"),
        ({"image": [{"op": "pca"}]}, "needs remove"),
        ({"image": [{"op": "pca", "remove": 2}]}, "must be a number in"),
        ({"audio": [{"op": "noise", "snr_db": 0, "colour": "pink"}]}, "unknown parameter 'colour'"),
        ("noise", "must map columns or kinds"),
    ],
)
def test_task_file_degrade_block_is_validated(block, words):
    content = {"name": "t", "label": "label", "data": {"provider": "synthetic", "degrade": block}}
    with pytest.raises(ConfigError, match=words):
        parse_task(content, source="t.yaml")


def test_operation_must_fit_the_column_kind_and_target_must_exist(raw):
    with pytest.raises(ConfigError, match="does not apply to audio"):
        run(raw, {"audio": [{"op": "pca", "remove": 0.5}]})
    with pytest.raises(ConfigError, match="neither a column in use"):
        run(raw, {"vidoe": [{"op": "blur", "sigma": 1}]})

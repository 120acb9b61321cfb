"""Default preprocessors per modality kind, column-kind inference and the decoded-array disk cache."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from mmbench.data.infer import infer_kind
from mmbench.data.preprocess.base import default_preprocessor
from mmbench.data.schema import ModalityInfo


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))


def png(path, value, size=(12, 10), mode="L"):
    array = np.full((size[1], size[0]) if mode == "L" else (size[1], size[0], 3), value, dtype=np.uint8)
    Image.fromarray(array, mode=mode).save(path)
    return str(path)


def wav(path, seconds, rate=8000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return str(path)


def fit_transform(info, train, other=None):
    pre = default_preprocessor(info)
    fitted = pre.fit(train)
    return fitted, pre.transform(train), (pre.transform(other) if other is not None else None)


def test_text_vocabulary_from_train_with_padding_unknown_and_separator():
    train = datasets.Dataset.from_dict({"title": ["a cat", "a dog", None], "body": ["the cat sat", "dog", "cat cat"]})
    test = datasets.Dataset.from_dict({"title": ["a zebra"], "body": ["cat"]})
    info = ModalityInfo(name="text", kind="text", columns=("title", "body"))
    fitted, train_t, test_t = fit_transform(info, train, test)
    assert fitted.vocab_size >= 6 and fitted.seq_len == train_t["ids"].shape[1]
    assert train_t["ids"].dtype == torch.long and train_t["mask"].dtype == torch.bool
    ids = test_t["ids"][0].tolist()
    assert ids[1] == 1, "a word unseen in train maps to the unknown id 1"
    assert 0 in train_t["ids"][2].tolist(), "short rows are padded with 0"
    assert (train_t["mask"] == (train_t["ids"] != 0) | (torch.arange(fitted.seq_len) == 0)).all()


def test_tabular_standardises_numbers_and_codes_categories_with_unknown_zero():
    train = datasets.Dataset.from_dict({"age": [1.0, 3.0, None, 5.0], "colour": ["red", "blue", "red", None], "n": [1, 2, 3, 4]})
    test = datasets.Dataset.from_dict({"age": [3.0], "colour": ["green"], "n": [2]})
    info = ModalityInfo(name="tabular", kind="tabular", columns=("age", "colour", "n"), extra={"categorical": ("n",)})
    fitted, train_t, test_t = fit_transform(info, train, test)
    assert fitted.n_numeric == 1 and fitted.cardinalities == (3, 5)  # colour: red, blue + unknown; n: 4 + unknown
    assert torch.isfinite(train_t["numeric"]).all() and train_t["numeric"][2, 0] == 0.0  # NaN -> 0
    assert abs(float(train_t["numeric"][[0, 1, 3], 0].mean())) < 1e-5
    assert train_t["categorical"][0, 0] == 1 and train_t["categorical"][3, 0] == 0  # red most frequent; None unknown
    assert test_t["categorical"][0, 0] == 0, "an unseen category is unknown"


def test_image_from_pngs_and_arrays_resized_and_standardised(tmp_path):
    paths = [png(tmp_path / f"{i}.png", 20 * i, size=(12, 10)) for i in range(6)]
    train = datasets.Dataset.from_dict({"image": paths})
    info = ModalityInfo(name="image", kind="image", columns=("image",))
    fitted, tensors, _ = fit_transform(info, train)
    assert fitted.channels == 1 and fitted.image_size == (10, 12)
    pixels = tensors["pixels"]
    assert pixels.shape == (6, 1, 10, 12) and abs(float(pixels.mean())) < 1e-4
    arrays = datasets.Dataset.from_dict({"image": [np.full((40, 40, 3), i * 10, dtype=np.uint8) for i in range(4)]})
    pre = default_preprocessor(info).__class__(info, max_side=16)
    fitted = pre.fit(arrays)
    assert fitted.channels == 3 and fitted.image_size == (16, 16)
    assert pre.transform(arrays)["pixels"].shape == (4, 3, 16, 16)


def test_audio_resampled_to_common_rate_and_cropped_or_padded(tmp_path):
    paths = [wav(tmp_path / f"{i}.wav", 0.25, rate=8000) for i in range(4)] + [wav(tmp_path / "hi.wav", 0.5, rate=16000)]
    train = datasets.Dataset.from_dict({"audio": paths})
    info = ModalityInfo(name="audio", kind="audio", columns=("audio",))
    fitted, tensors, _ = fit_transform(info, train)
    assert fitted.sample_rate == 8000
    wave = tensors["waveform"]
    assert wave.shape == (5, fitted.n_samples) and fitted.n_samples >= 2000
    assert abs(float(wave[4, :1000].abs().max()) - 0.5) < 0.05, "the 16 kHz clip keeps its amplitude after resampling"
    pre = default_preprocessor(info).__class__(info, sample_rate=4000, seconds=0.1)
    assert pre.fit(train).n_samples == 400 and pre.transform(train)["waveform"].shape == (5, 400)


def test_audio_cells_as_arrays_with_sampling_rate():
    cells = [{"array": np.ones(100, dtype=np.float32).tolist(), "sampling_rate": 1000} for _ in range(3)]
    split = datasets.Dataset.from_dict({"audio": cells})
    fitted, tensors, _ = fit_transform(ModalityInfo(name="audio", kind="audio", columns=("audio",)), split)
    assert fitted.sample_rate == 1000 and tensors["waveform"].shape == (3, 100)


def test_video_from_frame_folders_and_a_video_file(tmp_path):
    av = pytest.importorskip("av")
    folders = []
    for clip in range(2):
        folder = tmp_path / f"clip{clip}"
        folder.mkdir()
        for frame in range(5):
            png(folder / f"{frame:03d}.png", 40 * frame + clip, size=(16, 12), mode="RGB")
        folders.append(str(folder))
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 12, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((12, 16, 3), 30 * i, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    split = datasets.Dataset.from_dict({"video": [*folders, str(video)]})
    info = ModalityInfo(name="video", kind="video", columns=("video",))
    pre = default_preprocessor(info).__class__(info, n_frames=4)
    fitted = pre.fit(split)
    frames = pre.transform(split)["frames"]
    assert fitted.n_frames == 4 and fitted.image_size == (12, 16) and frames.shape == (3, 4, 3, 12, 16)
    assert float(frames[0, 3].mean()) > float(frames[0, 0].mean()), "frames are sampled in time order"


def test_decoded_arrays_come_from_the_disk_cache_in_a_second_process(tmp_path, monkeypatch):
    paths = [wav(tmp_path / f"{i}.wav", 0.1) for i in range(3)]
    split = datasets.Dataset.from_dict({"audio": paths})
    info = ModalityInfo(name="audio", kind="audio", columns=("audio",))
    first = default_preprocessor(info)
    first.fit(split)
    expected = first.transform(split)["waveform"]
    assert list((tmp_path / "cache").glob("*.npz"))

    import mmbench_audio.preprocess as module

    def fail(_):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(module, "read_audio", fail)
    second = default_preprocessor(info)
    second.fit(split)
    assert torch.equal(second.transform(split)["waveform"], expected)


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_media_is_decoded_a_chunk_at_a_time_and_decoded_once(tmp_path, monkeypatch, kind):
    import mmbench.data.storage.media_cache as cache_module

    monkeypatch.setattr(cache_module, "DECODE_ROWS", 4)
    if kind == "image":
        cells = [png(tmp_path / f"{i}.png", (37 * i) % 256, size=(8, 6), mode="RGB") for i in range(10)]
    else:
        cells = [wav(tmp_path / f"{i}.wav", 0.05 + 0.01 * i, freq=200.0 + 50 * i) for i in range(10)]
    split = datasets.Dataset.from_dict({kind: cells})
    info = ModalityInfo(name=kind, kind=kind, columns=(kind,))
    whole = default_preprocessor(info)
    monkeypatch.setattr(cache_module, "DECODE_ROWS", 100)
    whole.fit(split)
    expected = next(iter(whole.transform(split).values()))

    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "chunked-cache"))
    monkeypatch.setattr(cache_module, "DECODE_ROWS", 4)
    decoded: list[int] = []
    original = cache_module.decode_each

    def counting(items, column, decode, *, first_row=0):
        decoded.append(len(items))
        return original(items, column, decode, first_row=first_row)

    module = __import__({"image": "mmbench_vision", "audio": "mmbench_audio"}[kind] + ".preprocess", fromlist=["decode_each"])
    monkeypatch.setattr(module, "decode_each", counting)
    import mmbench.data.pixels as pixels_module  # the image size probe (shared with video and degradations)

    monkeypatch.setattr(pixels_module, "decode_each", counting)
    chunked = default_preprocessor(info)
    chunked.fit(split)
    probe, *chunks = decoded  # the first rows' headers choose size / rate, then the chunks
    assert probe == 10 and chunks == [4, 4, 2]  # never a whole split at once
    decoded.clear()
    actual = next(iter(chunked.transform(split).values()))
    assert decoded == []  # the transform read the chunks the fit decoded from the disk cache
    assert len(list((tmp_path / "chunked-cache").glob("*.npz"))) == 3
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)  # same result as decoding whole


def test_a_bad_file_past_the_first_chunk_is_named_by_its_row_in_the_split(tmp_path, monkeypatch):
    import mmbench.data.storage.media_cache as cache_module
    from mmbench.errors import DataError

    monkeypatch.setattr(cache_module, "DECODE_ROWS", 4)
    cells = [png(tmp_path / f"{i}.png", 10 * i) for i in range(8)]
    (tmp_path / "6.png").write_text("not an image")
    pre = default_preprocessor(ModalityInfo(name="image", kind="image", columns=("image",)))
    with pytest.raises(DataError, match="column 'image', row 6"):
        pre.fit(datasets.Dataset.from_dict({"image": cells}))


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["a.png", "b.jpg", "c.PNG"], "image"),
        (["a.wav", "b.flac", "c.wav"], "audio"),
        (["a.mp4", "b.avi", "c.mp4"], "video"),
        (["a long free text about a cat", "another rather long sentence here", "yet more words in a row"], "text"),
        (["red", "blue", "red"], "categorical"),
        ([1.5, 2.0, 3.0], "numeric"),
        ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "embedding"),
        ([f"{i:04x}f9" for i in range(30)], None),
    ],
)
def test_infer_kind(values, kind):
    assert infer_kind(datasets.Dataset.from_dict({"c": values}), "c") == kind


def test_infer_kind_recognises_frame_folders(tmp_path):
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
    assert infer_kind(datasets.Dataset.from_dict({"c": ["x", "y"]}), "c", base_dir=tmp_path) == "video"

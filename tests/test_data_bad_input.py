"""Bad input: each case is a one-line error naming the file and row, or with
``on_bad_rows: skip`` a counted skip; never a silent wrong result."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile
import yaml
from PIL import Image

from mmbench.tasks.loading import load_task_data
from mmbench.errors import ConfigError, DataError
from mmbench.tasks.files import load_task_file


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))


def make_table(tmp_path, n=12, **changes):
    """data.csv with image + audio paths, a text and a label column; ``changes`` edit cells: {(row, column): value}."""
    (tmp_path / "media").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        Image.fromarray(np.full((4, 4), i * 10, dtype=np.uint8), mode="L").save(tmp_path / "media" / f"{i}.png")
        soundfile.write(tmp_path / "media" / f"{i}.wav", np.zeros(80, dtype=np.float32), 8000)
        rows.append({"image": f"media/{i}.png", "audio": f"media/{i}.wav", "note": f"row {i}", "label": i % 2})
    frame = pd.DataFrame(rows).astype({"label": object})
    for (row, column), value in changes.get("cells", {}).items():
        frame.loc[row, column] = value
    frame.to_csv(tmp_path / "data.csv", index=False)
    return tmp_path / "data.csv"


def task(tmp_path, on_bad_rows=None, options=None, **extra):
    data = {"provider": "files", "options": options or {"path": "data.csv"}}
    if on_bad_rows:
        data["on_bad_rows"] = on_bad_rows
    content = {"name": "bad", "data": data, "label": "label", "split": {"validation": 0.25, "test": 0.25}, **extra}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(content))
    return load_task_file(tmp_path / "task.yaml")


def load(tmp_path, registry, **kwargs):
    return load_task_data(task(tmp_path, **kwargs), registry)


def one_line_error(tmp_path, registry, expected_type=DataError, **kwargs):
    with pytest.raises(expected_type) as caught:
        load(tmp_path, registry, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_media_file_names_file_and_row(tmp_path, registry):
    make_table(tmp_path, cells={(5, "image"): "media/nope.png"})
    message = one_line_error(tmp_path, registry)
    assert "data.csv, row 5" in message and "nope.png" in message and "not found" in message


def test_unreadable_image(tmp_path, registry):
    make_table(tmp_path)
    (tmp_path / "media" / "3.png").write_bytes(b"not a png at all")
    message = one_line_error(tmp_path, registry)
    assert "row 3" in message and "cannot decode image" in message and "3.png" in message


def test_unreadable_audio(tmp_path, registry):
    make_table(tmp_path)
    (tmp_path / "media" / "7.wav").write_bytes(b"RIFF garbage")
    message = one_line_error(tmp_path, registry)
    assert "row 7" in message and "7.wav" in message and "audio" in message


def test_label_missing(tmp_path, registry):
    make_table(tmp_path, cells={(2, "label"): None})
    message = one_line_error(tmp_path, registry)
    assert "data.csv, row 2" in message and "label 'label' is missing" in message


@pytest.mark.parametrize(("value", "words"), [("abc", "wrong type"), (1.5, "non-integer")])
def test_label_of_the_wrong_type(tmp_path, registry, value, words):
    make_table(tmp_path, cells={(4, "label"): value})
    message = one_line_error(tmp_path, registry)
    assert "row 4" in message and words in message


def test_unknown_columns(tmp_path, registry):
    make_table(tmp_path)
    message = one_line_error(tmp_path, registry, ConfigError, modalities={"imgae": "image"})
    assert "unknown column 'imgae'" in message
    (tmp_path / "task.yaml").unlink()
    content = {"name": "bad", "data": {"provider": "files", "options": {"path": "data.csv"}}, "label": "lable"}
    (tmp_path / "t2.yaml").write_text(yaml.safe_dump(content))
    with pytest.raises(DataError, match="label column 'lable' not found"):
        load_task_data(load_task_file(tmp_path / "t2.yaml"), registry)


def test_empty_split(tmp_path, registry):
    make_table(tmp_path)
    frame = pd.read_csv(tmp_path / "data.csv")
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[:4].to_csv(tmp_path / "test.csv", index=False)
    frame.iloc[:0].to_csv(tmp_path / "val.csv", index=False)
    message = one_line_error(tmp_path, registry, options={"train": "train.csv", "validation": "val.csv", "test": "test.csv"})
    assert "val.csv" in message and "empty" in message


def test_class_present_only_in_test(tmp_path, registry):
    make_table(tmp_path)
    frame = pd.read_csv(tmp_path / "data.csv")
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[:4].to_csv(tmp_path / "val.csv", index=False)
    odd = frame.iloc[:4].copy()
    odd.loc[odd.index[1], "label"] = 7
    odd.to_csv(tmp_path / "test.csv", index=False)
    message = one_line_error(tmp_path, registry, options={"train": "train.csv", "validation": "val.csv", "test": "test.csv"})
    assert "class '7'" in message and "never appears in train" in message and "row 1" in message


def test_skip_drops_bad_rows_and_counts_them(tmp_path, registry):
    make_table(tmp_path, n=16, cells={(1, "label"): None, (2, "image"): "media/gone.png", (3, "label"): "abc"})
    (tmp_path / "media" / "9.wav").write_bytes(b"broken")
    data = load(tmp_path, registry, on_bad_rows="skip")
    assert sum(data.split_sizes.values()) == 12
    assert data.notes["skipped_rows"] == 4
    assert data.notes["skipped_reasons"] == {"audio unreadable": 1, "image missing": 1, "label": 2}
    assert "row 1" in data.notes["first_skipped"]


def test_cli_reports_bad_data_in_one_line_with_exit_2(tmp_path, stores):
    make_table(tmp_path, cells={(5, "image"): "media/nope.png"})
    task(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmbench.cli.app",
            "search",
            str(tmp_path / "task.yaml"),
            "--n-trials",
            "1",
            "--quiet",
            "--storage",
            stores["storage"],
            "--tracking-uri",
            stores["tracking_uri"],
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "row 5" in lines[0] and "nope.png" in lines[0]

"""Bad input: each case is a one-line error naming the file and row, or with
``on_bad_rows: skip`` a counted skip; never a silent wrong result."""

from __future__ import annotations

import os
import signal
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
from tests.test_search_validation import assert_one_line_error, run_cli


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))


def make_table(tmp_path, n=12, fmt="csv", **changes):
    """data.csv (or .jsonl) with image + audio paths, a text and a label column; ``changes`` edit cells: {(row, column): value}."""
    (tmp_path / "media").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        Image.fromarray(np.full((4, 4), i * 10, dtype=np.uint8), mode="L").save(tmp_path / "media" / f"{i}.png")
        soundfile.write(tmp_path / "media" / f"{i}.wav", np.zeros(80, dtype=np.float32), 8000)
        rows.append({"image": f"media/{i}.png", "audio": f"media/{i}.wav", "note": f"row {i}", "label": i % 2})
    frame = pd.DataFrame(rows).astype({"label": object})
    for (row, column), value in changes.get("cells", {}).items():
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value
    if fmt == "jsonl":
        frame.to_json(tmp_path / "data.jsonl", orient="records", lines=True)
        return tmp_path / "data.jsonl"
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


# -- hostile cells through the real CLI: one line naming the file, row and column, exit 2 --------------


def cli_search(tmp_path, stores, table="data.csv", **task_changes):
    """``mmbench search`` on the task over ``table`` in this process: (exit code, stderr)."""
    task(tmp_path, options={"path": table}, **task_changes)
    return run_cli(["search", str(tmp_path / "task.yaml"), "--n-trials", "1", "--max-epochs", "1", "--no-plots", "-q",
                    "--device", "cpu", "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"]])


@pytest.mark.parametrize("value, sort", [(7, "a number (7)"), ({"a": 1}, "a mapping ({'a': 1})")])
def test_a_path_column_holding_a_number_or_a_mapping_names_row_and_column(tmp_path, stores, value, sort):
    make_table(tmp_path, fmt="jsonl", cells={(5, "image"): value})
    code, err = cli_search(tmp_path, stores, table="data.jsonl")
    assert_one_line_error(code, err, "data.jsonl, row 5: column 'image' holds " + sort, "other rows hold text")


def test_a_number_in_a_csv_path_column_is_a_missing_file_of_that_row(tmp_path, stores):
    make_table(tmp_path, cells={(5, "image"): 7})
    code, err = cli_search(tmp_path, stores)
    assert_one_line_error(code, err, "data.csv, row 5: column 'image'", "/7' not found")


def test_a_5000_character_path_is_one_short_line_or_a_skipped_row(tmp_path, stores, registry):
    make_table(tmp_path, cells={(5, "image"): "media/" + "a" * 5000 + ".png"})
    code, err = cli_search(tmp_path, stores)
    assert_one_line_error(code, err, "data.csv, row 5: column 'image'", "cannot be read")
    assert len(err) < 600
    data = load(tmp_path, registry, on_bad_rows="skip")  # the bad-rows policy applies to it like to any bad file
    assert data.notes["skipped_rows"] == 1 and "row 5" in data.notes["first_skipped"]


def nan_audio_table(tmp_path):
    make_table(tmp_path)
    wave = np.zeros(80, dtype=np.float32)
    wave[3] = np.nan
    soundfile.write(tmp_path / "media" / "5.wav", wave, 8000, subtype="FLOAT")


def test_nan_audio_samples_are_one_line_naming_the_column_never_a_traceback(tmp_path, stores):
    nan_audio_table(tmp_path)
    code, err = cli_search(tmp_path, stores)
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "column 'audio'" in lines[0] and "NaN" in lines[0], err


def test_nan_audio_samples_exit_2_naming_the_files_row(tmp_path, stores):
    nan_audio_table(tmp_path)
    code, err = cli_search(tmp_path, stores)
    assert_one_line_error(code, err, "data.csv, row 5", "column 'audio'", "NaN")


def test_a_fifo_named_like_an_image_is_a_bad_row_never_a_hang(tmp_path, stores, registry):
    def hung(*_args):
        raise TimeoutError("mmbench opened the FIFO and blocked")

    make_table(tmp_path, cells={(5, "image"): "media/x.png"})
    os.mkfifo(tmp_path / "media" / "x.png")  # opening it for reading would block until a writer comes
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        code, err = cli_search(tmp_path, stores)
        assert_one_line_error(code, err, "data.csv, row 5: column 'image'", "x.png' is not a regular file")
        data = load(tmp_path, registry, on_bad_rows="skip")
        assert data.notes["skipped_rows"] == 1 and "row 5" in data.notes["first_skipped"]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

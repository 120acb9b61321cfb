"""Hostile task files and media paths: one-line errors, never a crash, hang or traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mmbench.data.media import MediaError, check_file
from mmbench.errors import ConfigError
from mmbench.tasks.files import MAX_TASK_DEPTH, MAX_TASK_FILE_BYTES, load_task_file

GOOD = "name: t\ndata: {provider: synthetic, options: {n_samples: 40}}\nlabel: label\n"


def test_a_recursive_alias_is_refused_naming_where(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: t\ndata: {provider: synthetic, options: {x: &a [*a]}}\nlabel: label\n")
    with pytest.raises(ConfigError, match=r"loop\.yaml: a recursive YAML alias at data\.options\.x\.0$"):
        load_task_file(path)


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_refused(tmp_path, opening, closing):
    path = tmp_path / "deep.yaml"
    deep = opening * 2000 + "1" + closing * 2000
    path.write_text(f"name: t\ndata: {{provider: synthetic, options: {{x: {deep}}}}}\nlabel: label\n")
    with pytest.raises(ConfigError, match=rf"deep\.yaml: nested deeper than {MAX_TASK_DEPTH} levels"):
        load_task_file(path)


def test_a_huge_task_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(GOOD + "description: " + "x" * (MAX_TASK_FILE_BYTES + 10) + "\n")
    with pytest.raises(ConfigError, match=r"huge\.yaml: task file is 1\.0 MiB"):
        load_task_file(path)


def test_a_task_file_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "task.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="must be a regular file"):
        load_task_file(fifo)


def test_an_ordinary_task_file_still_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD)
    assert load_task_file(path).name == "t"


def test_a_fifo_named_like_an_image_is_refused_not_opened(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(MediaError, match="image path '.*x.png' is not a regular file"):
        check_file("image", str(fifo))


def test_an_overlong_path_is_a_media_error_with_a_short_message(tmp_path):
    with pytest.raises(MediaError, match=r"cannot be read|not found") as caught:
        check_file("audio", str(tmp_path / ("a" * 5000 + ".wav")))
    assert len(str(caught.value)) < 400


def test_the_cli_gives_one_line_and_exit_2_for_a_recursive_alias(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: t\ndata: {provider: synthetic, options: {x: &a [*a]}}\nlabel: label\n")
    result = subprocess.run([sys.executable, "-m", "mmbench.cli", "search", str(path), "--n-trials", "1"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}: a recursive YAML alias at data.options.x.0"]

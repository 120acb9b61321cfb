"""The classical models' frame keeps one row per example even when it reads no column (an audio or
image task: the majority baseline still predicts every row)."""

from __future__ import annotations


def test_a_frame_without_columns_keeps_every_row():
    import datasets

    from mmbench.train.classical import Columns, frame

    rows = datasets.Dataset.from_dict({"image": ["a.png", "b.png", "c.png"], "age": [1, 2, 3]})
    assert len(frame(rows, Columns())) == 3
    assert frame(rows, Columns(numeric=["age"]))["age"].tolist() == [1.0, 2.0, 3.0]

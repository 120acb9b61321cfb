"""What a modality kind declares besides its preprocessing, as the core asks it through the registry:
whether it holds files and how to check one, its ``data.degrade`` operations, its missing value."""

from __future__ import annotations

import os
import types

import datasets
import numpy as np
import pytest

import mmbench.registry
from mmbench import Degradation, MediaError, ModalityKind, hookimpl, replace_column
from mmbench.data.media import check_file
from mmbench.data.prepare import DataSpec, prepare
from mmbench.data.provider import RawData
from mmbench.data.splits import SplitSpec
from mmbench.errors import ConfigError, DataError


class Points(ModalityKind):
    """A file kind that overrides nothing: its files get the default check (a readable regular file)."""

    name = "points"
    extensions = (".pts",)


CALLS: list[tuple[str, ...]] = []


def _zero(splits, columns, op, rngs):
    """Sets a random share of each row's readings (over all the target's columns at once) to 0."""
    CALLS.append(tuple(columns))
    out = {}
    for name, split in splits.items():
        hidden = rngs(name).random((split.num_rows, len(columns))) < op["share"]
        for index, column in enumerate(columns):
            split = replace_column(split, column, np.where(hidden[:, index], 0.0, split[column]).tolist())
        out[name] = split
    return out


class Readings(ModalityKind):
    """A non-file kind whose one operation draws over every column of the target at once."""

    name = "readings"
    degradations = {"zero": Degradation(_zero, {"share": (0.5, 0.0, 1.0)}, per_column=False)}


@pytest.fixture
def kinds(monkeypatch, tmp_path):
    """The process-wide registry, with the installed plugins plus ``points`` and ``readings``."""
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    module = types.ModuleType("fake_kinds_plugin")
    module.mmbench_modalities = hookimpl(lambda: [Points, Readings])
    module.mmbench_modalities.__name__ = "mmbench_modalities"
    monkeypatch.setattr(mmbench.registry, "_default", mmbench.registry.load_registry(extra_plugins=[("kinds", module)]))


def test_file_kinds_are_those_declaring_extensions():
    assert Points.is_file_kind() and not Readings.is_file_kind()
    assert Points.missing_value is None and Readings.degradations["zero"].params == {"share": (0.5, 0.0, 1.0)}


def test_the_default_file_check_wants_an_existing_regular_file(tmp_path):
    good = tmp_path / "a.pts"
    good.write_text("1 2 3\n")
    Points.check_file(str(good))  # no decoder to ask: existing and regular is enough
    with pytest.raises(MediaError, match=r"^points file '.*b\.pts' not found$"):
        Points.check_file(str(tmp_path / "b.pts"))
    os.mkfifo(tmp_path / "c.pts")
    with pytest.raises(MediaError, match=r"^points path '.*c\.pts' is not a regular file$"):
        Points.check_file(str(tmp_path / "c.pts"))
    with pytest.raises(MediaError, match="points path .* cannot be read"):
        Points.check_file(str(tmp_path / ("p" * 5000 + ".pts")))


def test_check_file_by_name_asks_the_registered_kind(kinds, tmp_path):
    with pytest.raises(MediaError, match="points file .* not found"):
        check_file("points", str(tmp_path / "none.pts"))


def test_the_bad_row_check_and_fingerprint_ask_the_kind(kinds, tmp_path):
    """A plugin's file kind: relative paths resolved, a missing file a bad row, content in the fingerprint."""
    for i in range(12):
        (tmp_path / f"{i}.pts").write_text(f"{i} {i} {i}\n")
    rows = {"cloud": [f"{i}.pts" for i in range(12)], "label": [i % 2 for i in range(12)]}
    spec = DataSpec(label="label", modalities={"cloud": "points"}, split=SplitSpec(seed=0))

    def load(values):
        return prepare(RawData(splits={"all": datasets.Dataset.from_dict({**rows, "cloud": values})}, base_dir=tmp_path), spec)

    data = load(rows["cloud"])
    assert all(os.path.isabs(path) for path in data.splits["train"]["cloud"])
    (tmp_path / "3.pts").write_text("changed\n")
    assert load(rows["cloud"]).fingerprint != data.fingerprint  # hashed by file content, not path
    with pytest.raises(DataError, match=r"row 5: column 'cloud': points file '.*nope\.pts' not found"):
        load([*rows["cloud"][:5], "nope.pts", *rows["cloud"][6:]])
    with pytest.raises(DataError, match="row 2: column 'cloud' has no points file"):
        load([*rows["cloud"][:2], None, *rows["cloud"][3:]])


def test_data_degrade_finds_a_plugin_kinds_operation_in_the_registry(kinds):
    """The target kind's operation runs once over all its columns (``per_column=False``), seeded."""
    rows = {"a": [float(i + 1) for i in range(40)], "b": [float(-i - 1) for i in range(40)], "label": [i % 2 for i in range(40)]}

    def load(degrade):
        raw = RawData(splits={"all": datasets.Dataset.from_dict(rows)}, modalities={"a": "readings", "b": "readings"})
        return prepare(raw, DataSpec(label="label", split=SplitSpec(seed=0), degrade=degrade, extra={"degrade": degrade}))

    CALLS.clear()
    first, again = load({"readings": [{"op": "zero"}]}), load({"readings": [{"op": "zero"}]})
    assert CALLS == [("a", "b"), ("a", "b")]
    train = first.splits["train"]
    assert train["a"] == again.splits["train"]["a"] and 0 < train["a"].count(0.0) < len(train["a"])
    assert first.fingerprint == again.fingerprint
    with pytest.raises(ConfigError, match="'blur' does not apply to readings columns; readings takes: zero"):
        load({"a": [{"op": "blur", "sigma": 1}]})
    with pytest.raises(ConfigError, match=r"data\.degrade\.readings\.zero\.share must be a number in \[0\.0, 1\.0\]"):
        load({"readings": [{"op": "zero", "share": 2}]})

"""Tiny example files for the providers' ``example_task(directory)`` hooks.

The conformance kit (:mod:`mmbench.testing`) loads every provider; the ones that read user files
write a handful of small, real files here first (PNG through Pillow, WAV through soundfile), so
the kit exercises the same decoding path as a user's data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("a", "b")
PER_CLASS = 6


def write_image(path: Path, value: int, size: int = 8) -> None:
    """An ``size`` x ``size`` grey PNG whose brightness encodes the class."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8), mode="L").save(path)


def write_audio(path: Path, frequency: float, rate: int = 4000, seconds: float = 0.05) -> None:
    """A short mono sine WAV whose pitch encodes the class."""
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def class_tree(root: Path, kind: str) -> Path:
    """``root/<class>/<item>`` with :data:`PER_CLASS` images or clips per class; returns ``root``."""
    for c, label in enumerate(CLASSES):
        for i in range(PER_CLASS):
            if kind == "image":
                write_image(root / label / f"{i}.png", 40 + 150 * c + i)
            else:
                write_audio(root / label / f"{i}.wav", 300 + 500 * c + 10 * i)
    return root


def media_table(directory: Path) -> Path:
    """A csv with text, numeric, categorical, image-path and audio-path columns; returns its path."""
    rows = ["text,size,colour,image,audio,label"]
    for c, label in enumerate(CLASSES):
        for i in range(PER_CLASS):
            write_image(directory / "media" / f"{label}{i}.png", 40 + 150 * c + i)
            write_audio(directory / "media" / f"{label}{i}.wav", 300 + 500 * c + 10 * i)
            words = "bright sunny day" if c else "dark rainy night"
            rows.append(f"{words} {i},{c + 0.1 * i},{'red' if i % 2 else 'blue'},media/{label}{i}.png,media/{label}{i}.wav,{label}")
    path = directory / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    return path

"""The ``image`` modality kind: image files, encoded bytes or arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmbench import Degradation, MediaError, ModalityInfo, ModalityKind, Preprocessor, one_line
from mmbench_vision.degrade import blur, occlude, pca


class ImageKind(ModalityKind):
    """An image column -> ``pixels`` ``(B, C, H, W)`` float, standardised per channel."""

    name = "image"
    description = "image files/bytes/arrays -> pixels (resized, standardised per channel)"
    info_fields = ("channels", "image_size")
    extensions = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
    example_sizes = {"channels": 3, "image_size": (16, 16)}
    degradations = {
        "pca": Degradation(pca, {"remove": (None, 0.0, 0.999)}),
        "blur": Degradation(blur, {"sigma": (None, 0.0, 100.0)}),
        "occlude": Degradation(occlude, {"fraction": (None, 0.0, 1.0)}),
    }

    @classmethod
    def check_file(cls, path: str) -> None:
        """A regular file whose header Pillow accepts (``verify`` reads no pixels)."""
        super().check_file(path)
        from PIL import Image

        try:
            with Image.open(Path(path)) as image:
                image.verify()
        except Exception as error:  # noqa: BLE001 - Pillow raises many types for bad files
            raise MediaError(f"cannot decode image '{path}' ({one_line(error, 200)})") from None

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        from mmbench_vision.preprocess import ImagePreprocessor

        return ImagePreprocessor(info)

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: Any) -> dict[str, Any]:
        import torch

        return {"pixels": torch.randn((batch_size, info.channels or 3, *(info.image_size or (16, 16))), generator=generator)}

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: Any) -> dict[str, list[Any]]:
        import numpy as np

        return {c: [rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8) for _ in range(n_rows)] for c in info.columns}

"""Built-in image encoders: a small CNN, a ResNet-style CNN and pretrained Hugging Face vision models.

Also registers the ``image`` modality kind. The convolutional stacks live in :mod:`mmbench.nn`,
shared with ``video.frames`` (per frame) and ``audio.melcnn`` (over the spectrogram).
"""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_modalities() -> list[type]:
    from mmbench_vision.kind import ImageKind

    return [ImageKind]


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_vision.cnn import ResNetImage, SmallCNNImage
    from mmbench_vision.pretrained import PretrainedImage

    return [SmallCNNImage, ResNetImage, PretrainedImage]

"""Built-in image encoders: a small CNN, a ResNet-style CNN and pretrained Hugging Face vision models.

The convolutional stacks here are also the per-frame encoder of ``video.frames`` and the
spectrogram encoder of ``audio.melcnn``.
"""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_vision.cnn import ResNetImage, SmallCNNImage
    from mmbench_vision.pretrained import PretrainedImage

    return [SmallCNNImage, ResNetImage, PretrainedImage]

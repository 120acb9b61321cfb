"""The encoder zoo: shapes, gradients, masking, frontends and pretrained checkpoints (tiny, offline)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from mmbench import ModalityInfo
from mmbench.errors import ConfigError
from mmbench.space import sample_space

B = 3

INFOS = {
    "text": ModalityInfo("review", "text", ("review",), vocab_size=40, seq_len=10),
    "image": ModalityInfo("photo", "image", ("photo",), channels=1, image_size=(16, 16)),
    "audio": ModalityInfo("speech", "audio", ("speech",), sample_rate=8000, n_samples=1600),
    "video": ModalityInfo("clip", "video", ("clip",), channels=3, image_size=(16, 16), n_frames=4),
    "tabular": ModalityInfo("table", "tabular", ("a", "b", "c"), n_numeric=3, cardinalities=(4, 6)),
}

SCRATCH = [
    "text.bow",
    "text.rnn",
    "text.transformer",
    "image.cnn",
    "image.resnet",
    "audio.melcnn",
    "audio.mfccgru",
    "video.frames",
    "tabular.mlp",
]


def random_batch(info: ModalityInfo, n: int = B, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch in the documented default format of ``info.kind``."""
    g = torch.Generator().manual_seed(seed)
    if info.kind == "text":
        lengths = torch.randint(1, info.seq_len + 1, (n,), generator=g)
        mask = torch.arange(info.seq_len) < lengths[:, None]
        ids = torch.randint(1, info.vocab_size, (n, info.seq_len), generator=g) * mask
        return {"ids": ids, "mask": mask}
    if info.kind == "image":
        return {"pixels": torch.randn(n, info.channels, *info.image_size, generator=g)}
    if info.kind == "audio":
        return {"waveform": torch.randn(n, info.n_samples, generator=g)}
    if info.kind == "video":
        return {"frames": torch.randn(n, info.n_frames, info.channels, *info.image_size, generator=g)}
    categorical = torch.stack([torch.randint(0, c, (n,), generator=g) for c in info.cardinalities], dim=1)
    return {"numeric": torch.randn(n, info.n_numeric, generator=g), "categorical": categorical}


def check_output(encoder, batch, n: int = B) -> None:
    out = encoder(batch)
    assert out.pooled.shape == (n, encoder.out_dim)
    assert torch.isfinite(out.pooled).all()
    if out.tokens is not None:
        assert out.tokens.shape[0] == n and out.tokens.shape[2] == encoder.out_dim
        assert torch.isfinite(out.tokens).all()
    if out.mask is not None:
        assert out.mask.shape == out.tokens.shape[:2] and out.mask.dtype == torch.bool
    return out


def assert_all_gradients(encoder, out) -> None:
    (out.pooled.square().mean() + (0 if out.tokens is None else out.tokens.mean())).backward()
    missing = [name for name, p in encoder.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient reached {missing}"


def test_every_encoder_is_registered_with_documentation(registry):
    names = set(registry.list_encoders())
    assert set(SCRATCH) | {"text.pretrained", "image.pretrained", "audio.pretrained"} <= names
    for name in SCRATCH + ["text.pretrained", "image.pretrained", "audio.pretrained"]:
        cls = registry.get_encoder(name)
        assert cls.description and cls.paper and cls.modality == name.split(".")[0]


@pytest.mark.parametrize("name", SCRATCH)
def test_scratch_encoder_shapes_and_gradients(registry, name):
    info = INFOS[registry.get_encoder(name).modality]
    torch.manual_seed(0)
    encoder = registry.create_encoder(name, info)
    out = check_output(encoder, random_batch(info))
    assert_all_gradients(encoder, out)


@pytest.mark.parametrize("name", SCRATCH)
def test_every_sampled_configuration_builds_and_runs_a_batch_of_one(registry, name):
    cls = registry.get_encoder(name)
    info = INFOS[cls.modality]
    rng = random.Random(0)
    for _ in range(4):
        params = sample_space(cls.space, rng)
        encoder = registry.create_encoder(name, info, **params)
        check_output(encoder, random_batch(info, n=1), n=1)
        encoder.eval()
        first, second = encoder(random_batch(info, n=2)).pooled, encoder(random_batch(info, n=2)).pooled
        assert torch.equal(first, second), f"{name} {params}: eval mode is not deterministic"


@pytest.mark.parametrize("name", SCRATCH)
def test_state_dict_round_trip_reproduces_outputs(registry, name):
    info = INFOS[registry.get_encoder(name).modality]
    torch.manual_seed(1)
    original = registry.create_encoder(name, info).eval()
    torch.manual_seed(2)
    copy = registry.create_encoder(name, info).eval()
    copy.load_state_dict(original.state_dict())
    batch = random_batch(info)
    assert torch.allclose(original(batch).pooled, copy(batch).pooled, atol=1e-6)


@pytest.mark.parametrize("name", ["text.bow", "text.rnn", "text.transformer"])
def test_text_encoders_ignore_padding(registry, name):
    """Extra padding must not change a text's encoding (masking and RNN packing work)."""
    info = INFOS["text"]
    torch.manual_seed(0)
    encoder = registry.create_encoder(name, info).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 0, 0, 0, 0]])
    mask = ids != 0
    padded_ids = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    short, long = encoder({"ids": ids, "mask": mask}), encoder({"ids": padded_ids, "mask": padded_ids != 0})
    assert torch.allclose(short.pooled, long.pooled, atol=1e-5)
    assert long.tokens.shape == (2, 10, encoder.out_dim) and torch.equal(long.mask, padded_ids != 0)


@pytest.mark.parametrize("name", ["text.bow", "text.rnn", "text.transformer"])
def test_empty_text_gives_finite_encoding(registry, name):
    encoder = registry.create_encoder(name, INFOS["text"]).eval()
    ids = torch.tensor([[0, 0, 0], [4, 5, 0]])
    out = encoder({"ids": ids, "mask": ids != 0})
    assert torch.isfinite(out.pooled).all()


def test_rnn_cell_choice_builds_a_gru_or_an_lstm(registry):
    gru = registry.create_encoder("text.rnn", INFOS["text"], cell="gru", hidden=8)
    lstm = registry.create_encoder("text.rnn", INFOS["text"], cell="lstm", hidden=8)
    assert isinstance(gru.rnn, torch.nn.GRU) and isinstance(lstm.rnn, torch.nn.LSTM)
    assert gru.out_dim == lstm.out_dim == 16  # bidirectional
    with pytest.raises(ConfigError, match="text.rnn"):
        registry.create_encoder("text.rnn", INFOS["text"], cell="rnn")


def test_log_mel_puts_a_tone_in_the_right_band():
    from mmbench_audio.frontend import LogMel
    from transformers.audio_utils import hertz_to_mel

    rate, n_mels = 8000, 40
    frontend = LogMel(rate, n_mels)
    time = torch.arange(rate) / rate
    low, high = frontend(torch.sin(2 * math.pi * 300 * time)[None]), frontend(torch.sin(2 * math.pi * 2500 * time)[None])
    assert low.shape == (1, n_mels, frontend.n_frames(rate))
    band_low, band_high = int(low[0].mean(dim=1).argmax()), int(high[0].mean(dim=1).argmax())
    edges = torch.linspace(0, hertz_to_mel(rate / 2, "slaney"), n_mels + 2)
    assert edges[band_low] <= hertz_to_mel(300.0, "slaney") <= edges[band_low + 2]
    assert edges[band_high] <= hertz_to_mel(2500.0, "slaney") <= edges[band_high + 2]


def test_mfcc_is_normalised_per_clip():
    from mmbench_audio.frontend import MFCC

    coefficients = MFCC(8000, 13)(torch.randn(2, 1600) * 5 + 1)
    assert coefficients.shape == (2, 1600 // 80 + 1, 13)
    assert torch.allclose(coefficients.mean(dim=1), torch.zeros(2, 13), atol=1e-4)


@pytest.mark.parametrize("temporal", ["mean", "attention", "gru"])
def test_video_temporal_pooling(registry, temporal):
    encoder = registry.create_encoder("video.frames", INFOS["video"], temporal=temporal, width=8)
    out = check_output(encoder, random_batch(INFOS["video"]))
    assert out.tokens.shape[1] == INFOS["video"].n_frames
    assert_all_gradients(encoder, out)


def test_tabular_reads_numeric_only_or_categorical_only(registry):
    numeric = INFOS["tabular"].with_updates(cardinalities=())
    categorical = INFOS["tabular"].with_updates(n_numeric=0)
    check_output(registry.create_encoder("tabular.mlp", numeric), {"numeric": torch.randn(B, 3)})
    check_output(registry.create_encoder("tabular.mlp", categorical), {"categorical": torch.randint(0, 4, (B, 2))})
    with pytest.raises(ConfigError, match="no numeric or categorical"):
        registry.create_encoder("tabular.mlp", INFOS["tabular"].with_updates(n_numeric=0, cardinalities=()))


def test_image_encoders_build_on_tiny_images(registry):
    tiny = INFOS["image"].with_updates(image_size=(3, 5))
    for name in ("image.cnn", "image.resnet"):
        encoder = registry.create_encoder(name, tiny, n_blocks=3) if name == "image.cnn" else registry.create_encoder(name, tiny, n_stages=3)
        check_output(encoder, random_batch(tiny))


def test_missing_fitted_fields_are_config_errors(registry):
    with pytest.raises(ConfigError, match="image.cnn.*photo.*image_size"):
        registry.create_encoder("image.cnn", ModalityInfo("photo", "image", ("photo",)))
    with pytest.raises(ConfigError, match="text.bow.*vocab_size"):
        registry.create_encoder("text.bow", ModalityInfo("review", "text", ("review",)))

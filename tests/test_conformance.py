"""The conformance kit (mmbench.testing): every registered component passes it, and it catches broken ones.

The first test is parametrised over the registry at collection time, so an encoder, fusion or
dataset provider that any installed plugin registers is checked without editing this file.
"""

from __future__ import annotations

import json
import random

import datasets
import pytest
import torch
from torch import nn

from mmbench import Categorical, DatasetProvider, Encoded, Encoder, Fusion, Int, RawData
from mmbench.registry import load_registry
from mmbench.testing import (
    ConformanceError,
    check_dataset,
    check_encoder,
    check_fusion,
    check_gradients,
    check_input_order,
    check_output_shapes,
    check_pooled_only,
    check_seeded_determinism,
    check_space_points_build,
    check_state_dict_round_trip,
    check_unknown_option_rejected,
    parametrize_with_checks,
    space_points,
    yield_checks,
)


def _registered() -> list[type]:
    registry = load_registry()
    return (
        [registry.get_encoder(name) for name in registry.list_encoders()]
        + [registry.get_fusion(name) for name in registry.list_fusions()]
        + [registry.get_dataset(name) for name in registry.list_datasets()]
    )


def _tiny_checkpoints(root):
    """Tiny random BERT (+ WordPiece vocabulary), ViT and wav2vec 2.0 directories: env var -> path."""
    from transformers import BertConfig, BertModel, BertTokenizer, ViTConfig, ViTModel, Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    bert = root / "bert"
    bert.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat", "red", "blue"]
    (bert / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(vocab=str(bert / "vocab.txt")).save_pretrained(bert)
    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    BertModel(BertConfig(vocab_size=len(words), **small)).save_pretrained(bert)
    vit = root / "vit"
    ViTModel(ViTConfig(image_size=16, patch_size=8, **small)).save_pretrained(vit)
    (vit / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.2] * 3, "size": {"height": 16, "width": 16}}))
    wav2vec = root / "wav2vec"
    config = Wav2Vec2Config(conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                            num_conv_pos_embedding_groups=2, feat_extract_norm="layer", **small)
    Wav2Vec2Model(config).save_pretrained(wav2vec)
    (wav2vec / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 16000, "do_normalize": True}))
    return {"text": bert, "image": vit, "audio": wav2vec}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return _tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@parametrize_with_checks(_registered())
def test_registered_component_conforms(component, check, request, monkeypatch):
    env_var = getattr(component, "env_var", "")
    if env_var:  # pretrained encoders: a tiny local checkpoint instead of the real default model
        monkeypatch.setenv(env_var, str(request.getfixturevalue("checkpoints")[component.modality]))
    check(component.name, component)


# ------------------------------------------------------------------------------------------------
# Deliberately broken components: the kit must catch each one, naming component, property and fix
# ------------------------------------------------------------------------------------------------


class GoodEncoder(Encoder):
    name = "embedding.good"
    modality = "embedding"
    description = "a linear map"
    space = {"width": Int(4, 8)}

    def __init__(self, info, width=6):
        super().__init__(info)
        self.proj = nn.Linear(info.dim, width)
        self.out_dim = width

    def forward(self, batch):
        values = self.proj(batch["values"])
        return Encoded(pooled=values.mean(dim=1), tokens=values) if values.dim() == 3 else Encoded(pooled=values)


class DetachedEncoder(GoodEncoder):
    name = "embedding.detached"

    def forward(self, batch):
        return Encoded(pooled=super().forward(batch).pooled.detach())


class HalfDetachedEncoder(GoodEncoder):
    """One of two layers is cut off from the loss: the kit must name it."""

    name = "embedding.halfdetached"

    def __init__(self, info, width=6):
        super().__init__(info, width)
        self.extra = nn.Linear(width, width)

    def forward(self, batch):
        pooled = super().forward(batch).pooled
        return Encoded(pooled=pooled + self.extra(pooled.detach()).detach())


class WrongDimEncoder(GoodEncoder):
    name = "embedding.wrongdim"

    def __init__(self, info, width=6):
        super().__init__(info, width)
        self.out_dim = width + 1


class NoisyEncoder(GoodEncoder):
    name = "embedding.noisy"

    def forward(self, batch):
        pooled = super().forward(batch).pooled
        return Encoded(pooled=pooled + torch.rand_like(pooled))  # random even in eval mode


class UnseededInitEncoder(GoodEncoder):
    name = "embedding.unseeded"

    def __init__(self, info, width=6):
        super().__init__(info, width)
        with torch.no_grad():
            self.proj.weight.add_(random.random())  # Python's RNG, not torch's


class BadSpaceEncoder(GoodEncoder):
    """Heads from 1 to 4 over width 6: 4 heads do not divide 6, so the 'high' point cannot build."""

    name = "embedding.badspace"
    space = {"heads": Int(1, 4)}

    def __init__(self, info, heads=1):
        super().__init__(info, 6)
        self.attention = nn.MultiheadAttention(6, heads, batch_first=True)

    def forward(self, batch):
        pooled = super().forward(batch).pooled.unsqueeze(1)
        return Encoded(pooled=self.attention(pooled, pooled, pooled)[0].squeeze(1))


class PlainTensorEncoder(GoodEncoder):
    """A random offset kept as a plain attribute: not in the state dict, so a reload differs."""

    name = "embedding.plaintensor"

    def __init__(self, info, width=6):
        super().__init__(info, width)
        self.offset = torch.randn(width)

    def forward(self, batch):
        return Encoded(pooled=super().forward(batch).pooled + self.offset)


class ExcusedEncoder(NoisyEncoder):
    name = "embedding.excused"
    expected_failures = {
        "check_seeded_determinism": "deliberately stochastic (an example)",
        "check_state_dict_round_trip": "deliberately stochastic, so a reload cannot repeat an output",
    }


class OneSidedFusion(Fusion):
    """Reads only the first modality: the others receive no gradient."""

    name = "onesided"
    description = "reads one modality"
    space = {"hidden": Int(4, 8)}

    def __init__(self, dims, n_outputs, hidden=4):
        super().__init__(dims, n_outputs)
        self.first = sorted(dims)[0]
        self.head = nn.Sequential(nn.Linear(dims[self.first], hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))

    def forward(self, encoded):
        return self.head(encoded[self.first].pooled)


class WrongOutputsFusion(OneSidedFusion):
    name = "wrongoutputs"

    def forward(self, encoded):
        return torch.cat([super().forward(encoded), super().forward(encoded)], dim=1)


class UnseededProvider(DatasetProvider):
    name = "unseeded"
    description = "random rows on every load"

    def load(self, context):
        generator = torch.Generator().manual_seed(random.randrange(2**31))  # ignores context.seed
        rows = {"x": torch.randn(30, 3, generator=generator).tolist(), "label": [i % 2 for i in range(30)]}
        return RawData(splits={"all": datasets.Dataset.from_dict(rows)}, modalities={"x": "embedding"})


class LaxProvider(UnseededProvider):
    name = "lax"

    def __init__(self, **settings):  # forgets super().__init__: unknown options pass silently
        self.settings = settings


def _error(check, component) -> str:
    with pytest.raises(ConformanceError) as caught:
        check(component.name, component)
    message = str(caught.value)
    assert component.name in message and check.__name__ in message and "Fix:" in message
    return message


def test_a_correct_encoder_passes_every_check():
    check_encoder(GoodEncoder)


def test_detached_gradients_are_caught():
    assert "detached from the autograd graph" in _error(check_gradients, DetachedEncoder)
    assert "got no gradient: extra.weight, extra.bias" in _error(check_gradients, HalfDetachedEncoder)


def test_wrong_output_dims_are_caught():
    message = _error(check_output_shapes, WrongDimEncoder)
    assert "pooled has shape (4, 6), expected (batch=4, out_dim=7)" in message
    assert "shape (4, n_outputs=3), got (4, 6)" in _error(check_output_shapes, WrongOutputsFusion)


def test_non_determinism_is_caught():
    assert "two forward passes in eval mode give different outputs" in _error(check_seeded_determinism, NoisyEncoder)
    assert "two builds under torch.manual_seed(0) give different outputs" in _error(check_seeded_determinism, UnseededInitEncoder)
    assert "fingerprints differ" in _error(check_seeded_determinism, UnseededProvider)


def test_a_space_point_that_does_not_build_is_caught():
    message = _error(check_space_points_build, BadSpaceEncoder)
    assert "building with {'heads': 4} raised AssertionError" in message


def test_state_outside_the_state_dict_is_caught():
    assert "outputs differ after load_state_dict" in _error(check_state_dict_round_trip, PlainTensorEncoder)


def test_a_fusion_that_ignores_a_modality_is_caught():
    assert "no gradient reaches modality m2" in _error(check_gradients, OneSidedFusion)


def test_a_provider_that_accepts_unknown_options_is_caught():
    assert "an unknown option was accepted" in _error(check_unknown_option_rejected, LaxProvider)


def test_check_functions_raise_one_error_listing_every_failure():
    with pytest.raises(ConformanceError) as caught:
        check_fusion(WrongOutputsFusion)
    assert caught.value.check.split(",") == ["check_space_points_build", "check_output_shapes", "check_batch_of_one", "check_gradients",
                                             "check_seeded_determinism", "check_state_dict_round_trip", "check_task_types"]
    with pytest.raises(ConformanceError, match="fingerprints differ"):
        check_dataset(UnseededProvider)
    with pytest.raises(TypeError, match="not a subclass of mmbench.Fusion"):
        check_fusion(GoodEncoder)


def test_expected_failures_are_skipped_by_check_functions_and_strict_xfail_in_pytest():
    check_encoder(ExcusedEncoder)  # the stochastic forward is excused, everything else passes
    params = {p.id: p for p in parametrize_with_checks([ExcusedEncoder, OneSidedFusion]).args[1]}
    assert "embedding.excused-check_gradients" in params and "onesided-check_declaration" in params
    (xfail,) = params["embedding.excused-check_seeded_determinism"].marks
    assert params["embedding.excused-check_state_dict_round_trip"].marks
    assert xfail.name == "xfail" and xfail.kwargs["strict"] and "stochastic" in xfail.kwargs["reason"]
    assert not params["embedding.excused-check_gradients"].marks


def test_checks_follow_declared_capabilities():
    encoder_checks = [c.__name__ for c in yield_checks(GoodEncoder)]
    assert "check_sequence_input" in encoder_checks  # an embedding encoder must take (B, T, D) too
    assert "check_sequence_input" not in [c.__name__ for c in yield_checks(OneSidedFusion)]
    assert [c.__name__ for c in yield_checks(UnseededProvider)] == [
        "check_declaration", "check_unknown_option_rejected", "check_load", "check_prepare", "check_seeded_determinism"]


def test_space_points_cover_bounds_and_every_choice():
    space = {"n": Int(1, 9), "act": Categorical(["relu", "gelu", "tanh"])}
    points = space_points(space, n_random=2, seed=3)
    assert points[0]["n"] == 1 and points[1]["n"] == 9
    assert {p["act"] for p in points} == {"relu", "gelu", "tanh"}
    assert all(space["n"].contains(p["n"]) for p in points)


class ListSpaceEncoder(GoodEncoder):
    """A space written as a list instead of a mapping (a plausible first-plugin slip)."""

    name = "embedding.listspace"
    space = [Int(4, 8)]


def test_a_plain_list_space_is_a_conformance_error_listing_every_failure():
    with pytest.raises(ConformanceError) as caught:
        check_encoder(ListSpaceEncoder)
    assert "space must be a mapping of name -> Int/Float/Categorical, got list" in str(caught.value)
    assert "check_declaration" in caught.value.check.split(",")


class OrderDependentFusion(Fusion):
    """Concatenates in the order the dict arrives: reordered inputs silently change the output."""

    name = "orderdependent"
    description = "concatenates in dict order"
    space = {}

    def __init__(self, dims, n_outputs):
        super().__init__(dims, n_outputs)
        self.head = nn.Linear(sum(dims.values()), n_outputs)

    def forward(self, encoded):
        return self.head(torch.cat([e.pooled for e in encoded.values()], dim=-1))


def test_a_fusion_that_depends_on_the_order_of_its_inputs_is_caught():
    assert "the output changes when the inputs dict is given in another order" in _error(check_input_order, OrderDependentFusion)


class TokenReadingFusion(Fusion):
    """Declares it reads pooled vectors only, but averages tokens where there are any."""

    name = "tokenreading"
    description = "mean of token_view"
    space = {}
    reads_tokens = False

    def __init__(self, dims, n_outputs):
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)
        self.head = nn.Linear(sum(dims.values()), n_outputs)

    def forward(self, encoded):
        return self.head(torch.cat([encoded[m].token_view()[0].mean(dim=1) for m in self.order], dim=-1))


def test_a_fusion_that_claims_to_read_pooled_vectors_only_but_reads_tokens_is_caught():
    assert "reads_tokens is False but the output changes" in _error(check_pooled_only, TokenReadingFusion)
    TokenReadingFusion.reads_tokens = True  # the honest declaration passes (the check does not apply)
    try:
        check_pooled_only("tokenreading", TokenReadingFusion)
    finally:
        TokenReadingFusion.reads_tokens = False


class ProgressWatchingProvider(DatasetProvider):
    """Seeded rows; records whether ``datasets`` would draw progress bars while it loads."""

    name = "progresswatching"
    description = "seeded rows"
    bars_disabled: list[bool] = []

    def load(self, context):
        type(self).bars_disabled.append(datasets.are_progress_bars_disabled())
        generator = torch.Generator().manual_seed(context.seed)
        rows = {"x": torch.randn(30, 3, generator=generator).tolist(), "label": [i % 2 for i in range(30)]}
        return RawData(splits={"all": datasets.Dataset.from_dict(rows)}, modalities={"x": "embedding"})


def test_the_kit_draws_no_datasets_progress_bars_and_restores_the_setting():
    datasets.enable_progress_bars()
    check_dataset(ProgressWatchingProvider)
    assert ProgressWatchingProvider.bars_disabled and all(ProgressWatchingProvider.bars_disabled)
    assert not datasets.are_progress_bars_disabled()


class AlwaysDropoutEncoder(GoodEncoder):
    """Dropout applied in eval mode too (``training=True``): a stochastic forward."""

    name = "embedding.alwaysdropout"

    def forward(self, batch):
        encoded = super().forward(batch)
        return Encoded(pooled=torch.nn.functional.dropout(encoded.pooled, 0.5, training=True))


def test_always_on_dropout_is_reported_once_by_determinism():
    with pytest.raises(ConformanceError) as caught:
        check_encoder(AlwaysDropoutEncoder)
    failed = caught.value.check.split(",")
    assert "check_seeded_determinism" in failed
    assert "check_state_dict_round_trip" not in failed


class MaskedMaxTextEncoder(Encoder):
    """Masked max pooling without a guard: an empty text (all padding) pools to -inf."""

    name = "text.maskedmax"
    modality = "text"
    description = "embedding + masked max"
    space = {}

    def __init__(self, info):
        super().__init__(info)
        self.embed = nn.Embedding(int(info.vocab_size or 30), 8)
        self.out_dim = 8

    def forward(self, batch):
        tokens = self.embed(batch["ids"]).masked_fill(~batch["mask"][..., None], float("-inf"))
        return Encoded(pooled=tokens.max(dim=1).values)


def test_an_empty_text_row_catches_unguarded_masked_max_pooling():
    assert "finite" in _error(check_output_shapes, MaskedMaxTextEncoder)

"""Fusion strategies: shapes, gradients and masks for every registered fusion, and the synergy result.

The synergy test reproduces what the literature predicts: when the label is the XOR of two
modalities' hidden bits, additive late fusion stays near chance while early fusion and tensor
fusion, which model cross-modal interactions, solve it.
"""

from __future__ import annotations

import random

import pytest
import torch

from mmbench import Encoded
from mmbench.errors import ConfigError
from mmbench.registry import load_registry
from mmbench.space import sample_space

N_OUTPUTS = 3
FUSIONS = load_registry().list_fusions()
BUILT_IN = ["early", "late", "hybrid", "gmu", "tfn", "lmf", "cross_attention", "film", "bilinear"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(n_modalities: int, batch: int, *, tokens: bool, seed: int = 0) -> dict[str, Encoded]:
    """Modalities of different widths; token encodings with ragged masks (row 0 has one real token)."""
    g = torch.Generator().manual_seed(seed)
    encoded = {}
    for i in range(n_modalities):
        dim, length = 5 + i, 3 + i
        if tokens:
            values = torch.randn(batch, length, dim, generator=g)
            mask = torch.ones(batch, length, dtype=torch.bool)
            mask[0, 1:] = False
            encoded[f"m{i}"] = Encoded(values.mean(dim=1), values, mask)
        else:
            encoded[f"m{i}"] = Encoded(torch.randn(batch, dim, generator=g))
    return encoded


def _leaves(encoded: dict[str, Encoded]) -> dict[str, Encoded]:
    """The same encodings as gradient-tracking leaves."""
    return {
        m: Encoded(e.pooled.clone().requires_grad_(), None if e.tokens is None else e.tokens.clone().requires_grad_(), e.mask)
        for m, e in encoded.items()
    }


def _build(name: str, n_modalities: int, **hp):
    torch.manual_seed(0)
    dims = {f"m{i}": 5 + i for i in range(n_modalities)}
    return load_registry().get_fusion(name)(dims, N_OUTPUTS, **hp)


def test_every_strategy_of_the_issue_is_registered_with_a_description_and_paper():
    registry = load_registry()
    for name in BUILT_IN:
        cls = registry.get_fusion(name)
        assert cls.description and cls.paper and cls.space, name


@pytest.mark.parametrize("name", FUSIONS)
@pytest.mark.parametrize("n_modalities", [2, 3])
@pytest.mark.parametrize("tokens", [False, True], ids=["pooled", "tokens"])
def test_logits_shape_and_gradients_reach_every_parameter(name, n_modalities, tokens):
    fusion = _build(name, n_modalities).train()
    encoded = _leaves(_inputs(n_modalities, 4, tokens=tokens))
    logits = fusion(encoded)
    assert logits.shape == (4, N_OUTPUTS) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    silent = [n for n, p in fusion.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"{name}: no gradient for {silent}"
    for m, e in encoded.items():
        reached = e.pooled.grad is not None or (e.tokens is not None and e.tokens.grad is not None)
        assert reached, f"{name}: modality {m} is ignored"


@pytest.mark.parametrize("name", FUSIONS)
@pytest.mark.parametrize("tokens", [False, True], ids=["pooled", "tokens"])
def test_a_batch_of_one(name, tokens):
    fusion = _build(name, 2)
    for mode in (fusion.train(), fusion.eval()):
        assert mode(_inputs(2, 1, tokens=tokens)).shape == (1, N_OUTPUTS)


@pytest.mark.parametrize("name", FUSIONS)
def test_padding_positions_do_not_change_the_output(name):
    fusion = _build(name, 2).eval()
    encoded = _inputs(2, 4, tokens=True)
    changed = {}
    for m, e in encoded.items():
        noise = torch.randn_like(e.tokens) * 100 * (~e.mask).unsqueeze(-1)
        changed[m] = Encoded(e.pooled, e.tokens + noise, e.mask)
    with torch.no_grad():
        assert torch.allclose(fusion(encoded), fusion(changed), atol=1e-5)


@pytest.mark.parametrize("name", ["cross_attention", "film"])
def test_token_fusions_read_the_real_tokens(name):
    fusion = _build(name, 2).eval()
    encoded = _inputs(2, 4, tokens=True)
    e = encoded["m1"]
    changed = dict(encoded, m1=Encoded(e.pooled, e.tokens + 1.0 * e.mask.unsqueeze(-1), e.mask))
    with torch.no_grad():
        assert not torch.allclose(fusion(encoded), fusion(changed))


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_sampled_point_builds_and_runs_in_eval_mode_deterministically(name):
    cls = load_registry().get_fusion(name)
    rng = random.Random(0)
    for _ in range(4):
        hp = sample_space(cls.space, rng)
        fusion = _build(name, 3, **hp).eval()
        encoded = _inputs(3, 2, tokens=True)
        with torch.no_grad():
            first = fusion(encoded)
            twin = _build(name, 3, **hp).eval()
            twin.load_state_dict(fusion.state_dict())
            assert torch.equal(first, fusion(encoded)) and torch.allclose(first, twin(encoded)), hp


def test_tfn_caps_the_tensor_for_many_modalities():
    fusion = _build("tfn", 5, proj=16)
    assert (fusion.proj + 1) ** 5 <= 8192 and fusion.proj >= 1
    assert _build("tfn", 2, proj=16).proj == 16
    assert fusion(_inputs(5, 2, tokens=False)).shape == (2, N_OUTPUTS)


def test_hybrid_learned_mix_moves_and_bad_settings_are_config_errors():
    assert _build("hybrid", 2, combine="learned").mix is not None
    with pytest.raises(ConfigError, match="fusion 'bilinear'"):
        _build("bilinear", 2, method="outer")
    with pytest.raises(ConfigError, match="fusion 'cross_attention'"):
        _build("cross_attention", 2, d_model=16, n_heads=3)
    with pytest.raises(ConfigError, match="fusion 'tfn' needs at least 2 modalities"):
        _build("tfn", 1)


@pytest.fixture(scope="module")
def synergy():
    """The built-in synthetic provider in synergy mode: label = XOR of two modalities' hidden bits."""
    from mmbench.tasks.loading import load_task_data
    from mmbench.tasks.files import parse_task

    task = parse_task({
        "name": "synergy", "label": "label", "metric": "accuracy",
        "data": {"provider": "synthetic", "options": {"n_samples": 400, "n_modalities": 2, "dim": 4, "mode": "synergy", "noise": 0.1}},
        "split": {"validation": 0.25, "test": 0.25, "seed": 0},
    })
    return load_task_data(task, load_registry())


def _test_accuracy(data, fusion: str, params: dict, seed: int) -> float:
    from mmbench.search.trials import TrialConfig
    from mmbench.train.model import build_model, preprocessors_for
    from mmbench.train.loop import TrainSettings, fit

    registry = load_registry()
    encoder = {"hidden": 16, "n_layers": 1, "dropout": 0.0}
    config = TrialConfig(fusion, params, {"x1": "embedding.mlp", "x2": "embedding.mlp"}, {"x1": encoder, "x2": encoder}, {}, seed=seed)
    infos, tensors = data.tensors(preprocessors_for(config, data.schema, registry))
    model = build_model(config, infos, data.schema.n_classes, registry)
    settings = TrainSettings(lr=1e-2, batch_size=32, max_epochs=10, patience=10, device="cpu", seed=seed)
    return fit(model, tensors, settings, n_classes=data.schema.n_classes).test["accuracy"]


@pytest.mark.parametrize("seed", [0, 1])
def test_synergy_defeats_late_fusion_but_not_early_fusion_or_tfn(synergy, seed):
    late = _test_accuracy(synergy, "late", {"hidden": 32, "dropout": 0.0, "combine": "mean"}, seed)
    early = _test_accuracy(synergy, "early", {"hidden": 32, "n_layers": 1, "dropout": 0.0}, seed)
    tfn = _test_accuracy(synergy, "tfn", {"proj": 4, "hidden": 32, "dropout": 0.0}, seed)
    assert late < 0.65, f"late fusion should stay near chance on XOR, got {late:.2f}"
    assert early > 0.85 and tfn > 0.85, f"early {early:.2f}, tfn {tfn:.2f}"
    assert min(early, tfn) - late > 0.25

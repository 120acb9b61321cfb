"""Auxiliary alignment objectives (VSE++, InfoNCE, soft CCA) and how the search and the model use them."""

from __future__ import annotations

import pytest
import torch

from mmbench import Encoded
from mmbench.train.auxiliary import (
    AlignmentObjective,
    build_auxiliary,
    correlation_loss,
    infonce_loss,
    recall_at_1,
    vsepp_loss,
)
from mmbench.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _paired_views(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two modalities that see one 8-d latent through different nonlinear maps and noise."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 8, generator=g)
    first = torch.tanh(latent @ torch.randn(8, 16, generator=g) / 2) + 0.1 * torch.randn(n, 16, generator=g)
    second = torch.tanh(latent @ torch.randn(8, 12, generator=g) / 2) + 0.1 * torch.randn(n, 12, generator=g)
    return first, second


@pytest.mark.parametrize(("objective", "floor"), [("vsepp", 0.5), ("infonce", 0.5), ("dcca", 0.3)])
def test_alignment_pulls_held_out_pairs_together(objective, floor):
    torch.manual_seed(0)
    first, second = _paired_views(600)
    encoders = {"a": torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32)),
                "b": torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32))}
    aux = AlignmentObjective({"a": 32, "b": 32}, objective, weight=1.0, dim=16)
    params = [p for module in (*encoders.values(), aux) for p in module.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-2)

    def encode(rows) -> dict[str, Encoded]:
        return {"a": Encoded(encoders["a"](first[rows])), "b": Encoded(encoders["b"](second[rows]))}

    held_out = slice(500, 600)  # 100 pairs never trained on: chance recall@1 is 0.01
    with torch.no_grad():
        joint = aux.embed(encode(held_out))
        before = recall_at_1(joint["a"], joint["b"])
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        loss = aux(encode(torch.randint(0, 500, (64,), generator=g)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        joint = aux.embed(encode(held_out))
        after = recall_at_1(joint["a"], joint["b"])
    assert before < 0.1
    assert after > floor, f"{objective}: held-out recall@1 {after:.2f} (chance 0.01)"


def test_losses_prefer_aligned_pairs_and_survive_a_batch_of_one():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=-1)
    shuffled = a[torch.randperm(16, generator=g)]
    assert vsepp_loss(a, a, margin=0.0) == 0
    assert vsepp_loss(a, a) < vsepp_loss(a, shuffled)
    assert infonce_loss(a, a) < infonce_loss(a, shuffled)
    x = torch.randn(64, 4, generator=g)
    assert correlation_loss(x, 2 * x + 1, decorrelation=0.0) < 1e-6
    assert correlation_loss(x, x) < correlation_loss(x, torch.randn(64, 4, generator=g))
    one = torch.randn(1, 8, requires_grad=True)
    for loss in (vsepp_loss(one, one), infonce_loss(one, one), correlation_loss(one, one)):
        assert torch.isfinite(loss)
        loss.backward()


def test_three_modalities_average_the_pairs_and_weight_scales():
    encoded = {m: Encoded(torch.randn(8, 5)) for m in ("a", "b", "c")}
    torch.manual_seed(0)
    light = AlignmentObjective({m: 5 for m in encoded}, "infonce", weight=0.5)
    torch.manual_seed(0)
    heavy = AlignmentObjective({m: 5 for m in encoded}, "infonce", weight=1.0)
    assert torch.allclose(2 * light(encoded), heavy(encoded))
    assert set(light.embed(encoded)) == {"a", "b", "c"}


def test_build_auxiliary_reads_the_train_block_and_rejects_mistakes():
    dims = {"a": 4, "b": 6}
    assert build_auxiliary({}, dims) is None and build_auxiliary({"aux": "none", "aux_weight": 0.5}, dims) is None
    aux = build_auxiliary({"aux": "vsepp", "aux_weight": 0.3, "aux_dim": 8, "aux_margin": 0.1}, dims)
    assert aux.weight == 0.3 and aux.margin == 0.1 and aux.projections["a"].out_features == 8
    with pytest.raises(ConfigError, match=r"train\.aux: unknown auxiliary objective 'infonse'.*did you mean 'infonce'"):
        build_auxiliary({"aux": "infonse"}, dims)
    with pytest.raises(ConfigError, match="needs at least 2"):
        build_auxiliary({"aux": "infonce"}, {"a": 4})
    with pytest.raises(ConfigError, match=r"train\.aux_temperature"):
        build_auxiliary({"aux": "infonce", "aux_temperature": 0.0}, dims)


def test_search_suggests_aux_and_its_weight_only_when_chosen(tiny_task, search_settings, registry):
    import optuna

    from mmbench.search.study import plan_search

    plan = plan_search(search_settings(tiny_task()), registry)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        config = plan.space.suggest(trial, registry, seed=0)
        seen.add(config.train["aux"])
        assert ("train.aux_weight" in trial.params) == (config.train["aux"] != "none")
        assert config.flat_params()["train.aux"] == config.train["aux"]
        study.tell(trial, 0.0)
    assert seen == {"none", "vsepp", "infonce", "dcca"}
    fixed = plan_search(search_settings(tiny_task(), fixed={"train.aux": "infonce", "train.aux_temperature": 0.05}), registry)
    config = fixed.space.suggest(optuna.create_study().ask(), registry, seed=0)
    assert config.train["aux"] == "infonce" and config.train["aux_temperature"] == 0.05
    with pytest.raises(ConfigError, match=r"--set train\.aux='clip'"):
        plan_search(search_settings(tiny_task(), fixed={"train.aux": "clip"}), registry)


def test_unimodal_spaces_have_no_aux(registry):
    from mmbench.search.trials import build_search_space
    from mmbench.data.schema import ModalityInfo, Schema

    schema = Schema({"x": ModalityInfo(name="x", kind="embedding", columns=("x",))}, label="y", classes=("0", "1"))
    assert build_search_space(schema, registry).aux_choices == []
    with pytest.raises(ConfigError, match="only one"):
        build_search_space(schema, registry, fixed={"train.aux": "infonce"})


def test_the_model_carries_and_trains_the_objective(registry):
    from mmbench.search.trials import TrialConfig
    from mmbench.data.prepared import SplitTensors
    from mmbench.data.schema import ModalityInfo
    from mmbench.train.model import build_model
    from mmbench.train.loop import TrainSettings, fit

    infos = {m: ModalityInfo(name=m, kind="embedding", columns=(m,), dim=4) for m in ("x1", "x2")}
    encoder = {"hidden": 8, "n_layers": 1, "dropout": 0.0}
    config = TrialConfig("early", {"hidden": 8, "n_layers": 1, "dropout": 0.0}, {"x1": "embedding.mlp", "x2": "embedding.mlp"},
                         {"x1": encoder, "x2": encoder}, {"aux": "infonce", "aux_weight": 0.5}, seed=0)
    model = build_model(config, infos, 2, registry)
    assert model.auxiliary is not None and any(k.startswith("auxiliary.") for k in model.state_dict())
    g = torch.Generator().manual_seed(0)
    split = lambda n: SplitTensors({m: {"values": torch.randn(n, 4, generator=g)} for m in infos}, torch.randint(0, 2, (n,), generator=g))
    before = model.auxiliary.projections["x1"].weight.detach().clone()
    fit(model, {"train": split(32), "validation": split(16), "test": split(16)},
        TrainSettings(max_epochs=1, batch_size=16, device="cpu", grad_clip=0.0), n_classes=2)
    assert not torch.equal(before, model.auxiliary.projections["x1"].weight)

"""Task types: regression inferred from a numeric label, trained on a standardised target and
scored in the target's units with lower-is-better metrics."""

from __future__ import annotations

import datasets
import pytest
import torch

from mmbench.data.prepare import DataSpec, infer_task_type, prepare
from mmbench.data.prepared import SplitTensors
from mmbench.data.provider import RawData
from mmbench.data.schema import ModalityInfo
from mmbench.errors import ConfigError, DataError
from mmbench.search.trials import TrialConfig
from mmbench.train.loop import TrainSettings, fit, predict_logits
from mmbench.train.metrics import metric_direction, metric_sign
from mmbench.train.model import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
INFO = {"x": ModalityInfo(name="x", kind="embedding", columns=("x",), dim=4)}


def test_task_type_is_inferred_from_the_label_values():
    assert infer_task_type([1.5, 2.0, 3.25]) == "regression"
    assert infer_task_type(list(range(200))) == "regression"  # many distinct integers: a quantity
    assert infer_task_type([i % 10 for i in range(200)]) == "classification"  # digits
    assert infer_task_type(["cat", "dog"]) == "classification"
    assert infer_task_type([True, False]) == "classification"


def test_metric_direction_is_one_rule_for_every_metric():
    assert [metric_direction(m) for m in ("rmse", "mae", "loss")] == ["minimize"] * 3
    assert [metric_direction(m) for m in ("accuracy", "r2", "macro_f1", "auroc")] == ["maximize"] * 4
    assert metric_sign("rmse") == -1.0 and metric_sign("r2") == 1.0


def _prices(n: int = 120) -> RawData:
    area = [float(40 + (i * 37) % 160) for i in range(n)]
    return RawData(splits={"all": datasets.Dataset.from_dict({"area": area, "price": [1000.0 + 25.5 * a for a in area]})},
                   modalities={"area": "numeric"})


def test_a_numeric_price_label_prepares_as_regression_with_the_train_scale():
    data = prepare(_prices(), DataSpec(label="price"))
    assert data.schema.task_type == "regression" and data.schema.classes == () and data.schema.n_outputs == 1
    mean, std = data.schema.target_scale
    train = torch.tensor(data.splits["train"]["price"])
    assert mean == pytest.approx(train.mean().item(), rel=1e-6) and std == pytest.approx(train.std(unbiased=False).item(), rel=1e-4)
    assert data.labels("test").dtype == torch.float32
    assert type(data.schema).from_dict(data.schema.to_dict()) == data.schema


def test_a_non_numeric_regression_target_is_a_clear_error():
    raw = RawData(splits={"all": datasets.Dataset.from_dict({"x": [1.0, 2.0, 3.0, 4.0], "y": ["1.5", "x", "2", "3"]})}, modalities={"x": "numeric"})
    with pytest.raises(DataError, match=r"row 0: label 'y' is '1.5'; a regression target is a finite number"):
        prepare(raw, DataSpec(label="y", task_type="regression"))


def _regression_data() -> dict[str, SplitTensors]:
    """A target in the thousands, linear in the inputs."""
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(4, generator=g)

    def split(n: int) -> SplitTensors:
        values = torch.randn(n, 4, generator=g)
        return SplitTensors({"x": {"values": values}}, 5000.0 + 300.0 * (values @ weights))

    return {"train": split(256), "validation": split(64), "test": split(64)}


def _model(registry, data, loss="mse"):
    config = TrialConfig("early", {"hidden": 16, "n_layers": 1, "dropout": 0.0}, {"x": "embedding.mlp"},
                         {"x": {"hidden": 16, "n_layers": 1, "dropout": 0.0}}, {"loss": loss}, seed=0)
    labels = data["train"].labels
    return build_model(config, INFO, 1, registry, target_scale=(labels.mean().item(), labels.std().item()))


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_regression_trains_on_the_standardised_target_and_scores_in_its_units(registry, loss):
    data = _regression_data()
    model = _model(registry, data, loss)
    settings = TrainSettings.from_config({"loss": loss, "lr": 1e-2, "max_epochs": 12, "patience": 12, "batch_size": 32},
                                         metric="rmse", seed=0, device="cpu")
    result = fit(model, data, settings, n_classes=1)
    spread = data["test"].labels.std().item()
    assert set(result.test) >= {"rmse", "mae", "r2", "loss"}
    assert result.test["rmse"] < 0.5 * spread and result.test["r2"] > 0.7  # far better than predicting the mean
    rmses = [r.validation["rmse"] for r in result.history]
    assert result.best_epoch == rmses.index(min(rmses)) + 1  # lower is better: the smallest error is kept
    predictions = predict_logits(model, data["test"])
    assert abs(predictions.mean().item() - data["test"].labels.mean().item()) < 0.5 * spread  # in the target's units


def test_an_unknown_regression_loss_is_a_config_error(registry):
    data = _regression_data()
    with pytest.raises(ConfigError, match="train.loss 'l1' is unknown; available for regression: mse, huber"):
        fit(_model(registry, data, "l1"), data, TrainSettings(loss="l1", max_epochs=1, device="cpu", metric="rmse"), n_classes=1)


def _genres(n: int = 160, *, as_text: bool = False) -> RawData:
    """Two genres per row at most, each decided by one feature's sign: learnable per label."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g)
    labels = [[name for name, on in zip(("action", "drama", "comedy"), row > 0) if on] for row in x]
    column = ["|".join(names) for names in labels] if as_text else labels
    table = {"a": x[:, 0].tolist(), "b": x[:, 1].tolist(), "c": x[:, 2].tolist(), "genres": column}
    return RawData(splits={"all": datasets.Dataset.from_dict(table)}, modalities={"a": "numeric", "b": "numeric", "c": "numeric"})


def test_list_valued_and_delimited_labels_prepare_as_multilabel():
    listed = prepare(_genres(), DataSpec(label="genres"))
    assert listed.schema.task_type == "multilabel" and listed.schema.classes == ("action", "comedy", "drama")
    hot = listed.labels("train")
    assert hot.shape == (listed.split_sizes["train"], 3) and set(hot.unique().tolist()) <= {0.0, 1.0}
    delimited = prepare(_genres(as_text=True), DataSpec(label="genres", label_delimiter="|"))
    assert delimited.schema.task_type == "multilabel" and torch.equal(delimited.labels("test"), listed.labels("test"))


def test_multilabel_trains_per_label_sigmoids_and_tunes_the_threshold_on_validation(registry):
    from mmbench.data.preprocess.base import default_preprocessor

    data = prepare(_genres(240), DataSpec(label="genres"))
    info = data.schema.modalities["tabular"]
    infos, tensors = data.tensors({"tabular": default_preprocessor(info)})
    config = TrialConfig("early", {"hidden": 16, "n_layers": 1, "dropout": 0.0}, {"tabular": "tabular.mlp"},
                         {"tabular": {}}, {}, seed=0)
    model = build_model(config, infos, data.schema.n_outputs, registry)
    settings = TrainSettings(metric="micro_f1", lr=1e-2, max_epochs=8, patience=8, batch_size=32, device="cpu")
    result = fit(model, tensors, settings, n_classes=data.schema.n_outputs)
    assert set(result.test) >= {"micro_f1", "macro_f1", "samples_f1", "map", "loss"}
    assert result.test["micro_f1"] > 0.75 and result.test["map"] > 0.8  # each label follows one feature
    assert 0.05 <= result.validation["threshold"] <= 0.95 and "threshold" not in result.test


def _imbalanced(seed: int = 0) -> dict[str, SplitTensors]:
    """82/18 classes; the minority is recognisable from the first feature."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> SplitTensors:
        labels = (torch.rand(n, generator=g) < 0.18).long()
        values = torch.randn(n, 4, generator=g) + 0.8 * labels[:, None].float()
        return SplitTensors({"x": {"values": values}}, labels)

    return {"train": split(300), "validation": split(100), "test": split(100)}


def test_balanced_class_weight_raises_minority_recall_and_new_metrics_are_reported(registry):
    data = _imbalanced()
    config = TrialConfig("early", {"hidden": 8, "n_layers": 1, "dropout": 0.0}, {"x": "embedding.mlp"},
                         {"x": {"hidden": 8, "n_layers": 1, "dropout": 0.0}}, {}, seed=0)
    results = {}
    for weighting in ("none", "balanced"):
        settings = TrainSettings(metric="balanced_accuracy", lr=3e-3, max_epochs=6, patience=6, batch_size=32, device="cpu",
                                 class_weight=weighting)
        results[weighting] = fit(build_model(config, INFO, 2, registry), data, settings, n_classes=2).test
    assert {"balanced_accuracy", "pr_auc"} <= set(results["none"])
    assert results["balanced"]["balanced_accuracy"] > results["none"]["balanced_accuracy"]

"""Unit tests of holistic evaluation's pure parts: Shapley values, seed statistics, noise, Pareto front."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
import torch

from mmbench.runs.evaluation.contributions import shapley_values, shares
from mmbench.runs.evaluation.report import pareto_front
from mmbench.runs.evaluation.robustness import effective_robustness, perturb, relative_robustness
from mmbench.tracking.comparison import mark_within_noise, mean_std, within_noise


def _game(players, value_of):
    return {frozenset(c): value_of(frozenset(c)) for n in range(len(players) + 1) for c in itertools.combinations(players, n)}


def test_shapley_of_an_additive_game_is_each_players_own_worth():
    worth = {"a": 0.3, "b": 0.1, "c": -0.05}
    phi = shapley_values(list(worth), _game(list(worth), lambda s: 0.5 + sum(worth[p] for p in s)))
    assert phi == pytest.approx(worth)


def test_shapley_splits_synergy_equally_and_sums_to_the_total_gain():
    players = ["a", "b", "c"]
    values = _game(players, lambda s: 1.0 if {"a", "b"} <= s else 0.0)  # XOR-like: a and b only together
    phi = shapley_values(players, values)
    assert phi == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})
    assert sum(phi.values()) == pytest.approx(values[frozenset(players)] - values[frozenset()])


def test_shares_are_percentages_of_absolute_total():
    assert shares({"a": 0.3, "b": -0.1}) == pytest.approx({"a": 75.0, "b": -25.0})
    assert shares({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def test_mean_std_is_the_sample_standard_deviation():
    values = [0.81, 0.86, 0.79, 0.90]
    mean, std = mean_std(values)
    assert mean == pytest.approx(sum(values) / 4)
    assert std == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 3))
    assert std == pytest.approx(statistics.stdev(values))
    assert mean_std([0.7]) == (0.7, None)


def test_within_noise_uses_two_standard_errors_of_the_difference():
    # standard error of the difference: sqrt(0.03^2/3 + 0.03^2/3) = 0.02449
    assert within_noise((0.90, 0.03, 3), (0.86, 0.03, 3)) is True  # 0.04 < 0.049
    assert within_noise((0.90, 0.03, 3), (0.84, 0.03, 3)) is False  # 0.06 > 0.049
    assert within_noise((0.90, None, 1), (0.84, 0.03, 3)) is None


def test_mark_within_noise_compares_every_row_with_the_top_row():
    class R:
        def __init__(self, val, std, n):
            self.val_score, self.val_std, self.n_seeds, self.within_noise = val, std, n, "unset"

    rows = [R(0.90, 0.01, 3), R(0.895, 0.01, 3), R(0.70, 0.01, 3), R(0.89, None, 1)]
    mark_within_noise(rows)
    assert [r.within_noise for r in rows] == [None, True, False, None]


def test_robustness_summaries():
    assert relative_robustness(0.9, [0.9, 0.45]) == pytest.approx(0.75)
    # floor 0.5: skill above floor 0.4; kept 0.4 and 0.0 -> half on average
    assert effective_robustness(0.9, 0.5, [0.9, 0.5]) == pytest.approx(0.5)
    assert math.isnan(effective_robustness(0.5, 0.5, [0.5]))


def test_float_noise_grows_with_severity_and_is_seeded():
    batch = {"values": torch.randn(400, 8)}
    none = perturb(batch, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(none["values"], batch["values"])
    low = perturb(batch, 0.1, torch.Generator().manual_seed(0))["values"] - batch["values"]
    high = perturb(batch, 1.0, torch.Generator().manual_seed(0))["values"] - batch["values"]
    assert 0 < low.std() < high.std()
    assert high.std().item() == pytest.approx(2.0 * batch["values"].std().item(), rel=0.1)
    again = perturb(batch, 1.0, torch.Generator().manual_seed(0))["values"] - batch["values"]
    assert torch.equal(high, again)


def test_token_noise_drops_and_swaps_real_tokens_only():
    ids = torch.tensor([[5, 6, 7, 8, 0, 0]] * 200)
    mask = ids != 0
    out = perturb({"ids": ids, "mask": mask}, 0.5, torch.Generator().manual_seed(1))
    changed = out["ids"] != ids
    assert not changed[:, 4:].any(), "padding must stay padding"
    dropped = (out["ids"] == 0) & mask
    assert dropped.float().mean().item() == pytest.approx(0.25 * 4 / 6, abs=0.05)
    assert torch.equal(out["mask"], mask & ~dropped), "a dropped token leaves the mask"
    swapped = changed & ~dropped
    assert swapped.any() and set(out["ids"][swapped].tolist()) <= {5, 6, 7, 8}


def test_encoder_missing_default_zeroes_every_input():
    from mmbench.components import Encoder
    from mmbench.data.schema import ModalityInfo

    encoder = Encoder(ModalityInfo(name="t", kind="text"))
    batch = {"ids": torch.tensor([[3, 4]]), "mask": torch.tensor([[True, True]]), "values": torch.ones(1, 2)}
    gone = encoder.missing(batch)
    assert gone["ids"].dtype == torch.long and not gone["ids"].any()
    assert gone["mask"].dtype == torch.bool and not gone["mask"].any()
    assert gone["values"].dtype == torch.float32 and not gone["values"].any()


def test_pareto_front_keeps_the_non_dominated_points():
    points = [(1.0, 0.8), (2.0, 0.9), (3.0, 0.85), (0.5, 0.5), (1.0, 0.7)]
    assert pareto_front(points) == [3, 0, 1]

"""The stored portfolio (``mmbench/search/portfolio.json``) is data the search can use as it is: each
entry names installed plugins of the right modality kind and values inside their declared spaces,
and says which measured task it came from (``benchmarks/portfolio.py`` writes it; never by hand)."""

from __future__ import annotations

import json

from mmbench.search.portfolio import PORTFOLIO_FILE, load_portfolio


def test_the_stored_portfolio_was_derived_from_measured_tasks_and_is_cheapest_first():
    stored = json.loads(PORTFOLIO_FILE.read_text())
    assert stored["derived_by"] == "benchmarks/portfolio.py" and stored["configs"]
    seconds = [float(e["seconds"]) for e in stored["configs"]]
    assert seconds == sorted(seconds)
    assert all(e["task"] in stored["tasks"] and 0 < e["score"] <= 1 for e in stored["configs"])
    assert list(load_portfolio()) == stored["configs"]


def test_every_stored_entry_names_registered_plugins_with_values_in_their_spaces(registry):
    for entry in load_portfolio():
        fusion = registry.get_fusion(entry["fusion"])
        assert all(fusion.space[k].contains(v) for k, v in entry["fusion_params"].items()), entry["fusion"]
        for kind, name in entry["encoders"].items():
            assert name in registry.list_encoders(modality=kind), (kind, name)
            space = registry.get_encoder(name).space
            assert all(space[k].contains(v) for k, v in entry["encoder_params"].get(kind, {}).items()), name

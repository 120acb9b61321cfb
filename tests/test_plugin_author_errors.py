"""What a plugin author sees when a plugin is wrong: every message names the plugin and says what to do."""

from __future__ import annotations

import pytest

from mmbench import Fusion
from mmbench.errors import ConfigError, DuplicateComponentError, InvalidComponentError, PluginLoadError
from mmbench.registry import load_registry
from mmbench.testing import ConformanceError, check_fusion
from tests.test_registry import VectorEncoder, install_distribution, plugin, site  # noqa: F401 - site is a fixture


class NamespacedFusion(Fusion):
    name = "tp.moe"
    description = "a namespaced fusion name"

    def __init__(self, dims, n_outputs):
        super().__init__(dims, n_outputs)
        import torch

        self.head = torch.nn.Linear(sum(dims.values()), n_outputs)

    def forward(self, encoded):
        import torch

        return self.head(torch.cat([encoded[m].pooled for m in sorted(encoded)], dim=-1))


def test_the_registry_and_the_kit_agree_on_a_namespaced_fusion_name():
    registry = load_registry(extra_plugins=[("tp", plugin(mmbench_fusions=lambda: [NamespacedFusion]))])
    assert "tp.moe" in registry.list_fusions()
    check_fusion(NamespacedFusion)  # the kit's name rule is the registry's


def test_a_name_the_registry_refuses_is_refused_by_the_kit_too():
    shouty = type("Shouty", (NamespacedFusion,), {"name": "Tp.MoE"})
    with pytest.raises(InvalidComponentError, match="plugin 'loud': fusion name 'Tp.MoE' must be lowercase"):
        load_registry(extra_plugins=[("loud", plugin(mmbench_fusions=lambda: [shouty]))])
    with pytest.raises(ConformanceError, match="Tp.MoE"):
        check_fusion(shouty)


def test_the_same_class_registered_by_two_plugins_is_an_error_naming_both():
    with pytest.raises(DuplicateComponentError) as caught:
        load_registry(extra_plugins=[("first", plugin(mmbench_encoders=lambda: [VectorEncoder])),
                                     ("second", plugin(mmbench_encoders=lambda: [VectorEncoder]))])
    message = str(caught.value)
    assert "'first'" in message and "'second'" in message and "MMBENCH_DISABLE_PLUGINS=second" in message


def test_a_config_error_inside_a_hook_names_plugin_component_and_hyperparameter():
    def encoders():
        from mmbench import Int

        class Wide(VectorEncoder):
            name = "embedding.wide"
            space = {"width": Int(64, 8)}

        return [Wide]

    with pytest.raises(PluginLoadError) as caught:
        load_registry(extra_plugins=[("wide", plugin(mmbench_encoders=encoders))])
    message = str(caught.value)
    assert message.startswith("plugin 'wide': hook mmbench_encoders (class ")
    assert "Wide, hyperparameter 'width')" in message and "low=64, high=8" in message


def test_a_failed_import_suggests_disabling_the_plugin(site):  # noqa: F811 - the fixture
    install_distribution(site, "tmp-heavy-plugin", {"tmpheavy": "tmp_mmbench_heavy"}, {
        "tmp_mmbench_heavy": "import tmp_mmbench_not_installed\n",
    })
    with pytest.raises(PluginLoadError, match="to run without it: MMBENCH_DISABLE_PLUGINS=tmpheavy$"):
        load_registry()


def test_a_shipped_task_file_that_does_not_exist_names_the_plugin(tmp_path):
    from mmbench.tasks.files import builtin_tasks

    missing = tmp_path / "gone.yaml"
    registry = load_registry(extra_plugins=[("shipper", plugin(mmbench_tasks=lambda: [missing]))])
    with pytest.raises(ConfigError, match=r"plugin 'shipper' ships task file .*gone.yaml, which does not exist.*package-data"):
        builtin_tasks(registry)


def test_an_unknown_name_message_lists_each_name_once():
    from mmbench.errors import unknown_name_message

    assert unknown_name_message("modality", "txt", ["text", "tabular", "text"]) == (
        "unknown modality 'txt'; available: tabular, text (did you mean 'text'?)")

"""Plugin loading and the registry: hooks, entry points, and every way a plugin can be wrong."""

from __future__ import annotations

import itertools
import sys
import types
from pathlib import Path

import pytest
from torch import nn

from mmbench import Encoded, Encoder, Fusion, Int, ModalityInfo, ModalityKind, hookimpl
from mmbench.errors import DuplicateComponentError, InvalidComponentError, PluginLoadError, UnknownComponentError
from mmbench.registry import load_registry

_counter = itertools.count()


def plugin(**hooks) -> types.ModuleType:
    """A plugin module whose functions are the given hook implementations."""
    module = types.ModuleType(f"fake_plugin_{next(_counter)}")
    for name, function in hooks.items():
        function.__name__ = name
        setattr(module, name, hookimpl(function))
    return module


class VectorEncoder(Encoder):
    name = "embedding.vector"
    modality = "embedding"
    description = "a linear map"
    space = {"width": Int(4, 8)}

    def __init__(self, info, width=4):
        super().__init__(info)
        self.proj = nn.Linear(info.dim, width)
        self.out_dim = width

    def forward(self, batch):
        return Encoded(pooled=self.proj(batch["values"]))


class NeverBuilt(VectorEncoder):
    name = "embedding.neverbuilt"

    def __init__(self, info, width=4):
        raise AssertionError("listing must not build a component")


def install_distribution(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A real installed distribution: ``<name>-1.0.dist-info`` with METADATA and entry_points.txt, plus modules."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mmbench]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install distributions; their modules are forgotten afterwards."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("tmp_mmbench_"):
            del sys.modules[name]


def test_hooks_register_components_and_listing_builds_nothing(tmp_path):
    task = tmp_path / "mine.yaml"
    task.write_text("name: mine\n")
    mine = plugin(mmbench_encoders=lambda: [VectorEncoder, NeverBuilt], mmbench_tasks=lambda: [task])
    registry = load_registry(extra_plugins=[("mine", mine)])
    listed = registry.list_encoders("embedding.*")
    assert {"embedding.vector", "embedding.neverbuilt"} <= set(listed) and listed == sorted(listed)
    assert registry.list_encoders("*.vector", modality="embedding") == ["embedding.vector"]
    assert registry.list_encoders(modality="text") and "embedding.vector" not in registry.list_encoders(modality="text")
    assert registry.owner("encoder", "embedding.vector") == "mine"
    assert ("mine", task) in registry.task_files()
    assert registry.plugins["mine"].distribution == "(registered in process)"
    encoder = registry.create_encoder("embedding.vector", ModalityInfo("x", "embedding", dim=3), width=5)
    assert encoder.out_dim == 5


def test_event_hooks_reach_plugins():
    seen = []
    listener = plugin(mmbench_trial_finished=lambda task, study_name, trial_number, state, config, result: seen.append((task, trial_number, state)))
    registry = load_registry(extra_plugins=[("listener", listener)])
    registry.manager.hook.mmbench_trial_finished(task="t", study_name="s", trial_number=3, state="COMPLETE", config={}, result={})
    assert seen == [("t", 3, "COMPLETE")]


def test_unknown_names_suggest_the_closest(registry):
    with pytest.raises(UnknownComponentError, match=r"unknown fusion 'erly'; available: .*early.* \(did you mean 'early'\?\)"):
        registry.get_fusion("erly")


def test_duplicate_names_are_errors_naming_both_plugins():
    builtin = load_registry().get_encoder("embedding.mlp")

    class Copy(VectorEncoder):
        name = "embedding.mlp"

    with pytest.raises(DuplicateComponentError) as caught:
        load_registry(extra_plugins=[("copycat", plugin(mmbench_encoders=lambda: [Copy]))])
    assert "encoder 'embedding.mlp' is registered by both plugin 'embedding' and plugin 'copycat'" in str(caught.value)
    assert "MMBENCH_DISABLE_PLUGINS=copycat" in str(caught.value)
    assert caught.value.plugin == "copycat" and builtin is not Copy


def test_an_installed_plugin_is_loaded_with_its_distribution_and_version(site):
    install_distribution(site, "tmp-good-plugin", {"tmpgood": "tmp_mmbench_good"}, {
        "tmp_mmbench_good": "from mmbench import hookimpl\n\n@hookimpl\ndef mmbench_fusions():\n    return []\n",
    })
    info = load_registry().plugins["tmpgood"]
    assert (info.distribution, info.version) == ("tmp-good-plugin", "1.0")


def test_a_plugin_that_fails_to_import_names_distribution_and_entry_point(site):
    install_distribution(site, "tmp-broken-plugin", {"tmpbroken": "tmp_mmbench_broken:plugin"}, {
        "tmp_mmbench_broken": "import tmp_mmbench_missing_dependency\nplugin = None\n",
    })
    with pytest.raises(PluginLoadError) as caught:
        load_registry()
    message = str(caught.value)
    assert "plugin 'tmpbroken' (distribution 'tmp-broken-plugin', entry point 'tmp_mmbench_broken:plugin') failed to import" in message
    assert "ModuleNotFoundError" in message and "tmp_mmbench_missing_dependency" in message
    assert caught.value.plugin == "tmpbroken" and "\n" not in message


def test_disabled_plugins_are_skipped_even_when_broken(site, monkeypatch):
    install_distribution(site, "tmp-broken2-plugin", {"tmpbroken2": "tmp_mmbench_broken2"}, {"tmp_mmbench_broken2": "raise RuntimeError('boom')\n"})
    monkeypatch.setenv("MMBENCH_DISABLE_PLUGINS", " tmpbroken2 , fusion")
    registry = load_registry()
    assert "tmpbroken2" not in registry.plugins and "fusion" not in registry.plugins
    assert "early" not in registry.list_fusions() and "embedding.mlp" in registry.list_encoders()
    assert "early" in load_registry(disabled=["tmpbroken2"]).list_fusions()  # an explicit list wins over the variable


def test_a_misspelt_hook_is_caught_by_check_pending():
    with pytest.raises(PluginLoadError, match=r"plugin 'typo': unknown hook 'mmbench_encoder'; available: .* \(did you mean 'mmbench_encoders'\?\)"):
        load_registry(extra_plugins=[("typo", plugin(mmbench_encoder=lambda: [VectorEncoder]))])


def test_a_hook_that_raises_names_the_plugin_and_hook():
    def broken():
        raise KeyError("oops")

    with pytest.raises(PluginLoadError, match=r"plugin 'raiser': hook mmbench_fusions raised KeyError: 'oops'"):
        load_registry(extra_plugins=[("raiser", plugin(mmbench_fusions=broken))])


class Unnamed(VectorEncoder):
    name = ""


class NoPrefix(VectorEncoder):
    name = "vector"


class UnknownModality(VectorEncoder):
    name = "smell.nose"
    modality = "smell"


class BadSpaceType(VectorEncoder):
    name = "embedding.badspace"
    space = {"width": [4, 8]}


class BadSpaceName(VectorEncoder):
    name = "embedding.badname"
    space = {"hidden-size": Int(4, 8)}


class NotAFusion(Fusion):
    name = "early_copy"
    space = "hidden"


@pytest.mark.parametrize(
    ("hook", "component", "message"),
    [
        ("mmbench_encoders", Unnamed, "encoder class Unnamed declares no 'name'"),
        ("mmbench_encoders", NoPrefix, "encoder 'vector' must be named 'embedding.<name>'"),
        ("mmbench_encoders", UnknownModality, "encoder 'smell.nose' has modality 'smell'; valid: audio, embedding, image, tabular, text"),
        ("mmbench_encoders", BadSpaceType, "hyperparameter 'width' must be Int, Float or Categorical"),
        ("mmbench_encoders", BadSpaceName, "hyperparameter name 'hidden-size' must be a Python identifier"),
        ("mmbench_fusions", NotAFusion, "fusion 'early_copy': 'space' must be a dict"),
        ("mmbench_fusions", VectorEncoder, "fusion hook returned <class"),
        ("mmbench_datasets", "not a class", "not a subclass of mmbench.DatasetProvider"),
    ],
    ids=["no-name", "no-modality-prefix", "unknown-modality", "space-not-a-param", "space-bad-name", "space-not-a-dict", "encoder-as-fusion", "not-a-class"],
)
def test_malformed_components_are_invalid_component_errors(hook, component, message):
    with pytest.raises(InvalidComponentError) as caught:
        load_registry(extra_plugins=[("sloppy", plugin(**{hook: lambda: [component]}))])
    assert str(caught.value).startswith("plugin 'sloppy': ") and message in str(caught.value)
    assert caught.value.plugin == "sloppy"


class Smell(ModalityKind):
    name = "smell"
    description = "odour sensor readings"
    extensions = (".odr",)


class SmellEncoder(Encoder):
    name = "smell.nose"
    modality = "smell"
    description = "a nose"
    space = {}


def test_a_plugin_adds_a_modality_kind_its_encoders_and_file_extensions_use():
    registry = load_registry(extra_plugins=[("noses", plugin(mmbench_modalities=lambda: [Smell], mmbench_encoders=lambda: [SmellEncoder]))])
    assert "smell" in registry.list_kinds() and registry.get_kind("smell") is Smell
    assert registry.owner("modality kind", "smell") == "noses"
    assert registry.list_encoders(modality="smell") == ["smell.nose"]
    assert registry.kind_of_file("/data/a.ODR") == "smell" and registry.kind_of_file("b.wav") == "audio"
    assert registry.kind_of_file("notes.txt") is None
    with pytest.raises(UnknownComponentError, match="unknown modality kind 'smel'.*did you mean 'smell'"):
        registry.get_kind("smel")


def test_the_built_in_kinds_come_from_the_plugins_that_own_them(registry):
    owners = {kind: registry.owner("modality kind", kind) for kind in registry.list_kinds()}
    builtin = {"text": "text", "image": "vision", "audio": "audio", "video": "video", "tabular": "tabular", "embedding": "embedding"}
    assert builtin.items() <= owners.items()


def test_a_duplicate_kind_names_both_plugins_and_a_bad_kind_name_is_invalid():
    with pytest.raises(DuplicateComponentError, match="modality kind 'smell' is registered by both plugin 'one' and plugin 'two'"):
        load_registry(extra_plugins=[("one", plugin(mmbench_modalities=lambda: [Smell])), ("two", plugin(mmbench_modalities=lambda: [type("Smell2", (Smell,), {})]))])
    dotted = type("Dotted", (ModalityKind,), {"name": "smell.v2"})
    with pytest.raises(InvalidComponentError, match="modality kind 'smell.v2' must be a lowercase name without dots"):
        load_registry(extra_plugins=[("dots", plugin(mmbench_modalities=lambda: [dotted]))])

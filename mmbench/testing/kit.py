"""Conformance kit for plugin authors, in the manner of scikit-learn's ``estimator_checks``.

Each property is one function ``check_<property>(name, component)`` that raises
:class:`ConformanceError` (an ``AssertionError``) naming the component, the property and the fix.
``component`` is the class a plugin registers (an :class:`~mmbench.Encoder`,
:class:`~mmbench.Fusion` or :class:`~mmbench.DatasetProvider` subclass); ``name`` is how
messages call it (normally ``component.name``).

Three ways in:

* :func:`check_encoder`, :func:`check_fusion`, :func:`check_dataset` run every check that
  applies and raise one error listing every failure;
* :func:`parametrize_with_checks` makes one pytest test per (component, check), with readable
  ids such as ``embedding.mlp-check_gradients``;
* :func:`yield_checks` yields the checks that apply to a component, to run them your own way.

A check that cannot apply to a component (say, batches of one row for an encoder that needs
pairs) is declared on the class with a reason: ``expected_failures = {"check_batch_of_one":
"needs two rows"}``. :func:`check_encoder` skips it; :func:`parametrize_with_checks` marks it as a
strict ``xfail``, so the declaration is removed once the component is fixed.

Inputs come from :mod:`mmbench.testing._inputs` (dataset checks live in :mod:`mmbench.testing._datasets`): small seeded batches in the documented formats,
or the encoder's own preprocessor run on generated rows, or the component's hooks
``example_info()`` / ``example_batch(info, batch_size, seed)`` (encoders) and
``example_task(directory)`` (dataset providers). See ``docs/plugins.md``.

Example:
    >>> from mmbench.testing.kit import check_fusion
    >>> from mmbench_fusion.basic import EarlyFusion  # doctest: +SKIP
    >>> check_fusion(EarlyFusion)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import io
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from mmbench.testing._datasets import check_load, check_prepare, check_unknown_option_rejected, prepared_data
from mmbench.testing._errors import ConformanceError, _calling, _fail
from mmbench.testing._inputs import encoder_inputs, example_batch, example_info, example_rows, fusion_inputs
from mmbench.components import Encoded, Encoder, Fusion
from mmbench.data.provider import DatasetProvider
from mmbench.data.schema import MODALITY_KINDS
from mmbench.errors import MmbenchError
from mmbench.space import Categorical, Space, sample_space, validate_space

__all__ = [
    "ConformanceError",
    "check_batch_of_one",
    "check_dataset",
    "check_declaration",
    "check_encoder",
    "check_fusion",
    "check_gradients",
    "check_load",
    "check_output_shapes",
    "check_prepare",
    "check_seeded_determinism",
    "check_sequence_input",
    "check_space_points_build",
    "check_state_dict_round_trip",
    "check_unknown_option_rejected",
    "example_batch",
    "example_info",
    "example_rows",
    "fusion_inputs",
    "parametrize_with_checks",
    "space_points",
    "yield_checks",
]

Check = Callable[[str, type], None]
BATCH_SIZE = 4
N_OUTPUTS = 3
N_RANDOM_POINTS = 3
_SHORT_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


# ------------------------------------------------------------------------------------------------
# Search-space points
# ------------------------------------------------------------------------------------------------


def space_points(space: Space, *, n_random: int = N_RANDOM_POINTS, seed: int = 0) -> list[dict[str, Any]]:
    """The hyperparameter points the kit builds: every low, every high, then random points.

    Categorical values go round-robin over the points, so each choice is built at least once
    when there are no more choices than points. Random points come from
    :func:`mmbench.space.sample_space`.

    Example:
        >>> from mmbench import Categorical, Int
        >>> space_points({"n": Int(1, 3), "act": Categorical(["relu", "gelu"])}, n_random=1)
        [{'n': 1, 'act': 'relu'}, {'n': 3, 'act': 'gelu'}, {'n': 2, 'act': 'relu'}]
    """
    rng = random.Random(seed)
    corners = [{k: p.low if not isinstance(p, Categorical) else None for k, p in space.items()},
               {k: p.high if not isinstance(p, Categorical) else None for k, p in space.items()}]
    points = corners + [sample_space(space, rng) for _ in range(n_random)]
    for index, point in enumerate(points):
        for key, param in space.items():
            if isinstance(param, Categorical):
                point[key] = param.choices[index % len(param.choices)]
    return points


# ------------------------------------------------------------------------------------------------
# Models (encoders and fusions): building, running, validating outputs
# ------------------------------------------------------------------------------------------------


class _Case:
    """One component with one hyperparameter point and matching inputs of ``batch_size`` rows."""

    def __init__(self, name: str, component: type, check: str, hyperparameters: Mapping[str, Any], batch_size: int, **info_changes: Any) -> None:
        self.name, self.component, self.check = name, component, check
        self.hp, self.batch_size = dict(hyperparameters), batch_size
        self.is_encoder = issubclass(component, Encoder)
        with self._calling("making example inputs", "make the preprocessor (or example_batch hook) accept the example rows"):
            if self.is_encoder:
                if info_changes:
                    self.info = example_info(component.modality, **info_changes)
                    self.inputs: Any = example_batch(self.info, batch_size)
                else:
                    self.info, self.inputs = encoder_inputs(component, self.hp, batch_size)
            else:
                n_modalities = max(2, int(component.min_modalities))
                self.inputs = fusion_inputs(n_modalities, batch_size)
                self.dims = {m: int(e.pooled.shape[-1]) for m, e in self.inputs.items()}

    def _calling(self, action: str, fix: str) -> Any:
        return _calling(self.name, self.component, self.check, action, fix)

    def fail(self, problem: str, fix: str) -> None:
        _fail(self.name, self.component, self.check, problem, fix)

    def build(self, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        with self._calling(f"building with {self.hp or 'its defaults'}", "every point of the declared space must build; narrow the space or fix __init__"):
            if self.is_encoder:
                return self.component(self.info, **self.hp)
            return self.component(self.dims, N_OUTPUTS, **self.hp)

    def run(self, module: torch.nn.Module) -> Any:
        with self._calling(f"forward on a batch of {self.batch_size} with {self.hp or 'its defaults'}", "fix forward for the documented batch format"):
            return module(self.inputs)

    def outputs(self, module: torch.nn.Module, out: Any) -> list[torch.Tensor]:
        """Validate ``out``'s types and shapes; return its tensors (for comparisons and losses)."""
        b = self.batch_size
        if not self.is_encoder:
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (b, N_OUTPUTS):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                self.fail(f"logits must be a tensor of shape ({b}, n_outputs={N_OUTPUTS}), got {got}", "return one row of n_outputs logits per example")
            self._finite("logits", out)
            return [out]
        out_dim = getattr(module, "out_dim", None)
        if not isinstance(out_dim, int) or isinstance(out_dim, bool) or out_dim < 1:
            self.fail(f"out_dim must be a positive int, got {out_dim!r}", "set self.out_dim in __init__")
        if not isinstance(out, Encoded):
            self.fail(f"forward returned {type(out).__name__}, not Encoded", "return mmbench.Encoded(pooled=..., tokens=..., mask=...)")
        if tuple(out.pooled.shape) != (b, out_dim):
            self.fail(f"pooled has shape {tuple(out.pooled.shape)}, expected (batch={b}, out_dim={out_dim})", "make pooled (B, out_dim) and out_dim match it")
        self._finite("pooled", out.pooled)
        tensors = [out.pooled]
        if out.tokens is not None:
            if out.tokens.dim() != 3 or out.tokens.shape[0] != b or out.tokens.shape[2] != out_dim:
                self.fail(f"tokens has shape {tuple(out.tokens.shape)}, expected (batch={b}, T, out_dim={out_dim})", "give tokens the same width as pooled")
            self._finite("tokens", out.tokens)
            tensors.append(out.tokens)
        if out.mask is not None:
            if out.tokens is None:
                self.fail("mask is set but tokens is None", "return a mask only with tokens")
            if out.mask.dtype != torch.bool or tuple(out.mask.shape) != tuple(out.tokens.shape[:2]):
                self.fail(f"mask must be bool of shape {tuple(out.tokens.shape[:2])}, got {out.mask.dtype} {tuple(out.mask.shape)}", "return mask (B, T) bool, True at real positions")
            tensors[-1] = out.tokens * out.mask.unsqueeze(-1)
        return tensors

    def _finite(self, what: str, tensor: torch.Tensor) -> None:
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            self.fail(f"{what} must be finite floats, got {tensor.dtype} with NaN/inf={not torch.isfinite(tensor).all()}", "guard divisions and empty masks")

    def forward_checked(self, module: torch.nn.Module) -> list[torch.Tensor]:
        return self.outputs(module, self.run(module))


def _model_points(component: type) -> list[dict[str, Any]]:
    return [{}, *space_points(component.space)]


def check_declaration(name: str, component: type) -> None:
    """Class attributes are valid: a namespaced name, a known modality, a valid space whose names
    ``__init__`` accepts, a description (dataset providers: option help strings)."""
    check = "check_declaration"
    kind = getattr(component, "kind", "")
    declared = getattr(component, "name", "")
    if not isinstance(declared, str) or not declared:
        _fail(name, component, check, "no 'name' class attribute", "set name = '<short>' on the class")
    if issubclass(component, Encoder):
        modality, _, short = declared.partition(".")
        if component.modality not in MODALITY_KINDS or modality != component.modality or not _SHORT_NAME.match(short):
            _fail(name, component, check, f"encoder name '{declared}' with modality '{component.modality}' is not '<modality>.<short>'",
                  f"set modality to one of {', '.join(MODALITY_KINDS)} and name = '<modality>.<lowercase short name>'")
    elif not _SHORT_NAME.match(declared.replace(".", "_") if kind == "dataset" else declared):
        _fail(name, component, check, f"name '{declared}' must be lowercase letters, digits, '_' or '-'", "rename it (search parameters embed it)")
    if not isinstance(getattr(component, "description", ""), str) or not component.description.strip():
        _fail(name, component, check, "no description", "set description = '<one line for mmbench plugins>'")
    try:
        validate_space(component.space, f"{kind} '{name}'")
    except MmbenchError as error:
        _fail(name, component, check, str(error), "declare space = {'param': Int(...) | Float(...) | Categorical([...])}")
    if issubclass(component, DatasetProvider):
        options = component.options
        if not isinstance(options, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
            _fail(name, component, check, "options must map option name -> one-line help", "declare options = {'path': 'the CSV file'}")
        return
    parameters = inspect.signature(component.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    missing = [hp for hp in component.space if hp not in parameters and not takes_any]
    if missing:
        _fail(name, component, check, f"space names {', '.join(missing)} are not keyword arguments of __init__", "add them to __init__'s signature")
    if issubclass(component, Fusion) and (not isinstance(component.min_modalities, int) or component.min_modalities < 1):
        _fail(name, component, check, f"min_modalities must be an int >= 1, got {component.min_modalities!r}", "set min_modalities = 1 or more")


def check_output_shapes(name: str, component: type) -> None:
    """With default hyperparameters: Encoded.pooled (B, out_dim), tokens (B, T, out_dim), mask (B, T)
    bool; fusion logits (B, n_outputs); every value finite; in train and eval mode."""
    case = _Case(name, component, "check_output_shapes", {}, BATCH_SIZE)
    module = case.build()
    for mode in (True, False):
        module.train(mode)
        case.forward_checked(module)


def check_batch_of_one(name: str, component: type) -> None:
    """A batch of one row works in train and eval mode (the last batch of an epoch may have one row)."""
    case = _Case(name, component, "check_batch_of_one", {}, 1)
    module = case.build()
    for mode in (True, False):
        module.train(mode)
        with case._calling(f"forward on one row in {'train' if mode else 'eval'} mode", "avoid BatchNorm over the batch and squeeze() on the batch axis"):
            case.forward_checked(module)


def check_sequence_input(name: str, component: type) -> None:
    """An ``embedding`` encoder accepts sequences ``(B, T, D)`` as well as vectors ``(B, D)``."""
    case = _Case(name, component, "check_sequence_input", {}, BATCH_SIZE, seq_len=5)
    case.forward_checked(case.build())


def check_gradients(name: str, component: type) -> None:
    """At the defaults and every space point, a loss on the output gives a gradient to every trainable
    parameter (nothing detached, nothing unused); a fusion passes gradients to every modality; an
    encoder whose ``is_frozen`` is true has no trainable parameter."""
    for hp in _model_points(component):
        case = _Case(name, component, "check_gradients", hp, BATCH_SIZE)
        module = case.build().train()
        trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if case.is_encoder and component.is_frozen(**hp) and trainable:
            case.fail(f"is_frozen({hp}) is true but parameters {', '.join(n for n, _ in trainable[:3])} are trainable",
                      "call requires_grad_(False) on frozen weights, or make is_frozen return False")
        loss = sum(t.float().square().mean() for t in case.forward_checked(module))
        if (trainable or not case.is_encoder) and not loss.requires_grad:
            case.fail(f"with {hp or 'defaults'}, the output is detached from the autograd graph",
                      "do not .detach(), .item() or use torch.no_grad() in forward")
        if trainable or not case.is_encoder:
            with case._calling("backward", "keep the output connected to the parameters"):
                loss.backward()
        missing = [n for n, p in trainable if p.grad is None]
        if missing:
            case.fail(f"with {hp or 'defaults'}, parameters got no gradient: {', '.join(missing[:5])}",
                      "do not .detach() or use torch.no_grad() in forward; remove unused parameters or requires_grad_(False) them")
        if not case.is_encoder:
            unread = [m for m, e in case.inputs.items() if e.pooled.grad is None and (e.tokens is None or e.tokens.grad is None)]
            if unread:
                case.fail(f"with {hp or 'defaults'}, no gradient reaches modality {', '.join(unread)}", "use every modality's pooled or tokens, without detaching")


def check_seeded_determinism(name: str, component: type) -> None:
    """Models: two builds under one torch seed give equal outputs in eval mode, and a second forward
    repeats the first. Dataset providers: two loads with one seed give the same fingerprint."""
    if issubclass(component, DatasetProvider):
        first, second = (prepared_data(name, component, "check_seeded_determinism").fingerprint for _ in range(2))
        if first != second:
            _fail(name, component, "check_seeded_determinism", "two loads with the same seed differ (fingerprints differ)",
                  "generate and shuffle with LoadContext.seed (or a seed option), never unseeded randomness")
        return
    case = _Case(name, component, "check_seeded_determinism", {}, BATCH_SIZE)
    first, second = case.build(seed=0).eval(), case.build(seed=0).eval()
    a, b, again = case.forward_checked(first), case.forward_checked(second), case.forward_checked(first)
    if not _same(a, again):
        case.fail("two forward passes in eval mode give different outputs", "no randomness in eval mode: use nn.Dropout / check self.training")
    if not _same(a, b):
        case.fail("two builds under torch.manual_seed(0) give different outputs", "draw initial weights from torch's RNG only (no numpy/random)")


def check_state_dict_round_trip(name: str, component: type) -> None:
    """``state_dict`` saved with ``torch.save`` and loaded (strict) into a differently seeded build gives
    the same outputs: everything the forward depends on is in the state dict."""
    case = _Case(name, component, "check_state_dict_round_trip", {}, BATCH_SIZE)
    source, target = case.build(seed=0).eval(), case.build(seed=1).eval()
    buffer = io.BytesIO()
    with case._calling("state_dict save/load", "keep state in parameters and buffers; load_state_dict must accept state_dict()"):
        torch.save(source.state_dict(), buffer)
        buffer.seek(0)
        target.load_state_dict(torch.load(buffer, weights_only=True))
    if not _same(case.forward_checked(source), case.forward_checked(target)):
        case.fail("outputs differ after load_state_dict", "register tensors the forward uses as parameters or buffers (register_buffer)")


def check_space_points_build(name: str, component: type) -> None:
    """Every point of :func:`space_points` (lows, highs, every categorical choice, random samples) lies
    in the space, builds, and gives well-formed outputs."""
    check = "check_space_points_build"
    try:
        validate_space(component.space, f"{component.kind} '{name}'")
    except MmbenchError as error:
        _fail(name, component, check, str(error), "declare space = {'param': Int(...) | Float(...) | Categorical([...])}")
    for point in space_points(component.space):
        case = _Case(name, component, check, point, BATCH_SIZE)
        case.forward_checked(case.build().eval())


def _same(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x, y, rtol=1e-5, atol=1e-6) for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------

_MODEL_CHECKS: tuple[Check, ...] = (
    check_declaration,
    check_space_points_build,
    check_output_shapes,
    check_batch_of_one,
    check_gradients,
    check_seeded_determinism,
    check_state_dict_round_trip,
)
_DATASET_CHECKS: tuple[Check, ...] = (check_declaration, check_unknown_option_rejected, check_load, check_prepare, check_seeded_determinism)


def yield_checks(component: type) -> Iterator[Check]:
    """The checks that apply to ``component``, by its kind and declared capabilities.

    Raises:
        TypeError: ``component`` is not an Encoder, Fusion or DatasetProvider subclass.
    """
    if not isinstance(component, type) or not issubclass(component, (Encoder, Fusion, DatasetProvider)):
        raise TypeError(f"{component!r} is not an mmbench Encoder, Fusion or DatasetProvider class")
    if issubclass(component, DatasetProvider):
        yield from _DATASET_CHECKS
        return
    yield from _MODEL_CHECKS
    if issubclass(component, Encoder) and component.modality == "embedding":
        yield check_sequence_input


def parametrize_with_checks(components: Iterable[type]) -> Any:
    """A ``pytest.mark.parametrize`` over every (component, check) pair, ids ``<name>-<check>``.

    Checks named in a component's ``expected_failures`` are strict ``xfail``: the test fails once
    the check passes, so stale declarations are noticed.

    Example:
        >>> from mmbench.testing.kit import parametrize_with_checks
        >>> @parametrize_with_checks([])  # your classes here
        ... def test_conformance(component, check):
        ...     check(component.name, component)
    """
    import pytest

    params = []
    for component in components:
        for check in yield_checks(component):
            reason = dict(component.expected_failures).get(check.__name__)
            marks = [pytest.mark.xfail(reason=reason, strict=True, raises=ConformanceError)] if reason else []
            params.append(pytest.param(component, check, id=f"{component.name}-{check.__name__}", marks=marks))
    return pytest.mark.parametrize(("component", "check"), params)


def _run_all(component: type, base: type) -> None:
    if not isinstance(component, type) or not issubclass(component, base):
        raise TypeError(f"{component!r} is not a subclass of mmbench.{base.__name__}")
    expected = dict(component.expected_failures)
    failures: dict[str, str] = {}
    for check in yield_checks(component):
        if check.__name__ in expected:
            continue
        try:
            check(component.name, component)
        except ConformanceError as error:
            failures[check.__name__] = str(error)
    if failures:
        raise ConformanceError("\n".join(failures.values()), component=component.name, check=",".join(failures))


def check_encoder(component: type[Encoder]) -> None:
    """Run every encoder check except declared expected failures.

    Raises:
        ConformanceError: one line per failed check.
    """
    _run_all(component, Encoder)


def check_fusion(component: type[Fusion]) -> None:
    """Run every fusion check except declared expected failures.

    Raises:
        ConformanceError: one line per failed check.
    """
    _run_all(component, Fusion)


def check_dataset(component: type[DatasetProvider]) -> None:
    """Run every dataset-provider check except declared expected failures.

    Raises:
        ConformanceError: one line per failed check.
    """
    _run_all(component, DatasetProvider)

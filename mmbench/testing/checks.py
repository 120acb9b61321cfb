"""The conformance checks of encoders and fusions, one function per property.

Each ``check_<property>(name, component)`` builds the component at the points of its search
space (:func:`space_points`) on small seeded inputs (:mod:`mmbench.testing._inputs`) and raises
:class:`~mmbench.testing.ConformanceError` naming the component, the property and the fix.
The runners (:func:`~mmbench.testing.check_encoder`, ...) live in :mod:`mmbench.testing.kit`.
"""

from __future__ import annotations

import inspect
import io
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mmbench.testing._datasets import prepared_data
from mmbench.testing._errors import _calling, _fail
from mmbench.testing._inputs import encoder_inputs, example_batch, example_info, fusion_inputs
from mmbench.components import Encoded, Encoder, Fusion
from mmbench.data.provider import DatasetProvider
from mmbench.errors import MmbenchError
from mmbench.registry import COMPONENT_NAME
from mmbench.space import Categorical, Space, sample_space, validate_space

Check = Callable[[str, type], None]
BATCH_SIZE = 4
N_OUTPUTS = 3
N_RANDOM_POINTS = 3


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
        from mmbench.registry import get_registry

        kinds = get_registry().list_kinds()
        if component.modality not in kinds or modality != component.modality or not COMPONENT_NAME.fullmatch(short):
            _fail(name, component, check, f"encoder name '{declared}' with modality '{component.modality}' is not '<modality>.<short>'",
                  f"set modality to one of {', '.join(kinds)} and name = '<modality>.<lowercase short name>'")
    elif not COMPONENT_NAME.fullmatch(declared):  # the registry's rule
        _fail(name, component, check, f"name '{declared}' must be lowercase letters, digits, '_' or '-', in parts joined by '.'",
              "rename it (search parameters embed it)")
    if not isinstance(getattr(component, "description", ""), str) or not component.description.strip():
        _fail(name, component, check, "no description", "set description = '<one line for mmbench plugins>'")
    if not isinstance(component.space, Mapping):
        _fail(name, component, check, f"space must be a mapping of name -> Int/Float/Categorical, got {type(component.space).__name__}",
              "declare space = {'param': Int(...) | Float(...) | Categorical([...])}")
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


def check_input_order(name: str, component: type) -> None:
    """A fusion reads its inputs by modality name, not by the order of the dict it is given (the
    order may differ between training, ``reproduce`` and ``predict``)."""
    case = _Case(name, component, "check_input_order", {}, BATCH_SIZE)
    module = case.build().eval()
    with torch.no_grad():
        forward = case.run(module)
        with case._calling("forward on the same inputs in reversed dict order", "look inputs up by name (inputs[m] for m in self.dims)"):
            backward = module(dict(reversed(list(case.inputs.items()))))
    if not isinstance(forward, torch.Tensor) or not isinstance(backward, torch.Tensor) or forward.shape != backward.shape \
            or not torch.allclose(forward, backward, atol=1e-5):
        case.fail("the output changes when the inputs dict is given in another order",
                  "iterate over self.dims (fixed at construction), not over the inputs dict")


def check_pooled_only(name: str, component: type) -> None:
    """A fusion that declares ``reads_tokens = False`` gives the same logits when its inputs carry
    only pooled vectors (what a trial on cached features gives it, :mod:`mmbench.train.features`)."""
    if getattr(component, "reads_tokens", True):
        return
    case = _Case(name, component, "check_pooled_only", {}, BATCH_SIZE)
    module = case.build().eval()
    with torch.no_grad():
        full = case.run(module)
        with case._calling("forward on the same inputs without tokens and masks", "read only Encoded.pooled, or set reads_tokens = True"):
            pooled = module({m: Encoded(pooled=e.pooled) for m, e in case.inputs.items()})
    if not isinstance(full, torch.Tensor) or not isinstance(pooled, torch.Tensor) or full.shape != pooled.shape \
            or not torch.allclose(full, pooled, atol=1e-5):
        case.fail("reads_tokens is False but the output changes when the inputs carry pooled vectors only",
                  "set reads_tokens = True (the default), or read only Encoded.pooled")


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


#: task type -> (output width, loss of the fusion's output against a target of that task)
_TASK_LOSSES: dict[str, tuple[int, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]] = {
    "classification": (N_OUTPUTS, lambda out, g: torch.nn.functional.cross_entropy(out, torch.randint(0, N_OUTPUTS, (out.shape[0],), generator=g))),
    "multilabel": (5, lambda out, g: torch.nn.functional.binary_cross_entropy_with_logits(out, torch.randint(0, 2, out.shape, generator=g).float())),
    "regression": (1, lambda out, g: torch.nn.functional.mse_loss(out.reshape(-1), torch.randn(out.shape[0], generator=g))),
}


def check_task_types(name: str, component: type) -> None:
    """A fusion serves every task type unchanged: logits ``(B, n_outputs)`` for ``n_outputs`` of a
    classification (one per class), a multi-label (one per label) and a regression (one) head,
    each trained by its own loss (cross-entropy, per-label BCE, MSE) with finite gradients."""
    for task_type, (n_outputs, loss_of) in _TASK_LOSSES.items():
        case = _Case(name, component, "check_task_types", {}, BATCH_SIZE)
        torch.manual_seed(0)
        with case._calling(f"building a {task_type} head of {n_outputs} output(s)", "take n_outputs from __init__, never assume 2 or more"):
            module = component(case.dims, n_outputs).train()
        out = case.run(module)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (BATCH_SIZE, n_outputs):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            case.fail(f"{task_type}: logits must have shape ({BATCH_SIZE}, {n_outputs}), got {got}", "return one row of n_outputs values per example")
        with case._calling(f"backward of the {task_type} loss", "keep the output connected to the parameters, as floats"):
            loss_of(out.float(), torch.Generator().manual_seed(0)).backward()
        bad = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            case.fail(f"{task_type}: non-finite gradients in {', '.join(bad[:3])}", "guard divisions and normalisations of a one-wide output")


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
    reference = case.forward_checked(source)
    if not _same(reference, case.forward_checked(source)):
        return  # a forward that does not repeat itself is check_seeded_determinism's failure, reported once there
    if not _same(reference, case.forward_checked(target)):
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

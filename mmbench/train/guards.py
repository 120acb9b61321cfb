"""Run-time checks of plugin outputs, so a broken plugin fails its trial with a message naming it.

Before a trial trains, :func:`check_model_outputs` runs the model on two training rows, one
component at a time, and checks what each returned against the contract (``Encoded.pooled``
of shape ``(B, out_dim)`` and a floating dtype; logits ``(B, n_classes)``). A plugin that raises,
returns the wrong shape or dtype, or a fusion with the wrong number of logits becomes a
:class:`~mmbench.errors.TrialError` naming the encoder or fusion - the trial is recorded FAILED
with that reason and the search goes on - instead of a shape error deep inside another
component that names nobody.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from mmbench.components import Encoded
from mmbench.errors import TrialError, one_line

if TYPE_CHECKING:
    from mmbench.data.prepared import SplitTensors
    from mmbench.train.model import MultimodalModel

_PROBE_ROWS = 2


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _name(component: Any) -> str:
    return str(getattr(component, "name", type(component).__name__))


@torch.no_grad()
def check_model_outputs(model: MultimodalModel, train: SplitTensors, n_classes: int) -> None:
    """Check each encoder's and the fusion's output on a two-row batch (eval mode, no gradients).

    Raises:
        TrialError: the first component that raised or broke the contract, by name.
    """
    if len(train) == 0:
        return
    index = torch.arange(min(_PROBE_ROWS, len(train)), device=train.labels.device)
    inputs, _ = train.select(index)
    rows = int(index.numel())
    was_training = model.training
    model.eval()
    try:
        encoded: dict[str, Encoded] = {}
        for modality, encoder in model.encoders.items():
            where = f"encoder '{_name(encoder)}' (modality '{modality}')"
            output = _call(encoder, inputs[modality], where)
            pooled = getattr(output, "pooled", None)
            if not isinstance(output, Encoded) or not isinstance(pooled, torch.Tensor):
                raise TrialError(f"{where} returned {_describe(output)}; forward must return Encoded(pooled=(B, D))")
            expected = (rows, int(encoder.out_dim))
            if tuple(pooled.shape) != expected:
                raise TrialError(f"{where} returned pooled {_describe(pooled)}; expected (batch, out_dim) = {expected}")
            if not pooled.is_floating_point():
                raise TrialError(f"{where} returned pooled {_describe(pooled)}; expected a floating-point dtype")
            encoded[modality] = output
        where = f"fusion '{_name(model.fusion)}'"
        logits = _call(model.fusion, encoded, where)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (rows, n_classes):
            raise TrialError(f"{where} returned {_describe(logits)}; expected logits of shape (batch, n_classes) = "
                             f"{(rows, n_classes)}")
        if not logits.is_floating_point():
            raise TrialError(f"{where} returned {_describe(logits)}; expected floating-point logits")
    finally:
        model.train(was_training)


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA/MPS/host allocator failures (retrying the same configuration would fail again)."""
    text = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def _call(component: Any, argument: Any, where: str) -> Any:
    try:
        return component(argument)
    except TrialError:
        raise
    except Exception as error:
        if is_out_of_memory(error):
            raise  # fit() turns it into a TrialError naming the batch size
        raise TrialError(f"{where} failed: {type(error).__name__}: {one_line(error, 300)}") from error

"""Framework overhead: epoch time of an mmbench trial vs a hand-written PyTorch loop (goal <= 1.05).

Both train the same model (same initial weights) on the same in-memory tensors with AdamW,
gradient clipping and a validation pass per epoch. The mmbench side is :func:`mmbench.train.loop.fit`
with the per-epoch callback a search trial uses (MLflow metrics to a SQLite store); the
hand-written side computes validation accuracy only. Runs alternate (mmbench, hand, mmbench, ...)
so load on a shared machine hits both alike; the figure is the ratio of median epoch times.

    python benchmarks/overhead.py [--rows 20000] [--epochs 5] [--repeats 3] [--batch-size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, median, quiet, temporary_stores  # noqa: E402


def build(rows: int, folder: Path):
    """A synthetic two-modality task's tensors, a configuration and its model."""
    from mmbench.search.trials import TrialConfig
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.model import build_model, preprocessors_for
    from mmbench.registry import get_registry
    from mmbench.tasks.files import resolve_task

    task_file = folder / "overhead.yaml"
    task_file.write_text(
        "name: overhead\ndata:\n  provider: synthetic\n"
        f"  options: {{n_samples: {rows}, n_modalities: 2, dim: 32, mode: mixed, noise: 0.3}}\n"
        "label: label\nmetric: accuracy\nsplit: {validation: 0.2, test: 0.2, seed: 0}\n"
    )
    registry = get_registry()
    data = load_task_data(resolve_task(str(task_file), registry), registry)
    config = TrialConfig(fusion="early", fusion_params={}, encoders={"x1": "embedding.mlp", "x2": "embedding.mlp"},
                         encoder_params={"x1": {}, "x2": {}}, train={}, seed=0)
    infos, tensors = data.tensors(preprocessors_for(config, data.schema, registry))
    model = build_model(config, infos, data.schema.n_classes, registry)
    return model, tensors, data.schema.n_classes


def mmbench_epochs(model, tensors, n_classes, args, tracker, run_id) -> list[float]:
    """Wall seconds per epoch of ``mmbench.train.loop.fit`` with a search trial's tracking callback."""
    from mmbench.train.loop import TrainSettings, fit

    stamps = [time.perf_counter()]

    def on_epoch(report) -> None:
        tracker.log_epoch(run_id, report)
        stamps.append(time.perf_counter())

    settings = TrainSettings(lr=1e-3, batch_size=args.batch_size, max_epochs=args.epochs, patience=args.epochs + 1,
                             seed=0, device=args.device)
    fit(model, tensors, settings, n_classes=n_classes, on_epoch=on_epoch)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def hand_epochs(model, tensors, n_classes, args) -> list[float]:
    """The loop one would write by hand: shuffle, forward, loss, backward, clip, step; validation accuracy."""
    import torch
    from torch import nn

    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model.to(device)
    move = lambda t: {m: {k: v.to(device) for k, v in d.items()} for m, d in t.inputs.items()}  # noqa: E731
    train_x, train_y = move(tensors["train"]), tensors["train"].labels.to(device)
    val_x, val_y = move(tensors["validation"]), tensors["validation"].labels.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    n = len(train_y)
    times = []
    for _ in range(args.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, args.batch_size):
            index = order[start : start + args.batch_size]
            batch = {m: {k: v[index] for k, v in d.items()} for m, d in train_x.items()}
            logits, _ = model(batch)
            loss = loss_fn(logits, train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = 0
            for start in range(0, len(val_y), args.batch_size * 4):
                batch = {m: {k: v[start : start + args.batch_size * 4] for k, v in d.items()} for m, d in val_x.items()}
                correct += int((model(batch)[0].argmax(1) == val_y[start : start + args.batch_size * 4]).sum())
        _ = correct / len(val_y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    quiet()
    import torch

    from mmbench.tracking.tracker import Tracker

    folder, stores = temporary_stores("overhead")
    model, tensors, n_classes = build(args.rows, folder)
    initial = copy.deepcopy(model.state_dict())
    tracker = Tracker(stores["tracking_uri"])
    experiment = tracker.experiment_id("overhead")
    parent = tracker.study_run(experiment, "overhead", tags={}, params={})
    ours, hand = [], []
    for repeat in range(args.repeats):
        model.load_state_dict(initial)
        run_id = tracker.start_trial(experiment, parent, run_name=f"repeat {repeat}", tags={}, params={})
        ours += mmbench_epochs(model, tensors, n_classes, args, tracker, run_id)[1:]  # first epoch: warm-up
        model.load_state_dict(initial)
        hand += hand_epochs(model, tensors, n_classes, args)[1:]
    ratio = median(ours) / median(hand)
    n_train = len(tensors["train"])
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}")
    print(f"data: {n_train} train rows, batch {args.batch_size}, {math.ceil(n_train / args.batch_size)} steps/epoch; "
          f"{args.repeats} x {args.epochs - 1} timed epochs each")
    print(f"epoch  mmbench trial (fit + MLflow per-epoch metrics): {median(ours) * 1000:8.1f} ms (median)")
    print(f"epoch  hand-written PyTorch loop                     : {median(hand) * 1000:8.1f} ms (median)")
    print(f"ratio  mmbench / hand-written = {ratio:.3f}  (goal <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'})")


if __name__ == "__main__":
    main()

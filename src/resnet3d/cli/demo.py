"""``resnet3d demo``: the whole path on built-in synthetic data, no downloads, no data needed."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from . import CLIError
from ._common import add_device_and_precision, announce_runtime, require_plots

MARKER = "resnet3d-demo.json"
# Reported numbers come from fp32, as `resnet3d evaluate` computes them by default.
EVAL_PRECISION = "fp32"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="end to end on built-in synthetic chest CT: data, train, evaluate, export, predict",
        description="Generate a small synthetic chest-CT data set (the built-in phantom: NCP "
        "scans with bilateral peripheral ground-glass opacities, CP with a lobar "
        "consolidation, Normal without findings), split it by patient, train ResNet-18 on "
        "depth-4 volumes (CPU, or CUDA when present), evaluate on the held-out patients at "
        "volume, scan and patient level, save the model with save_pretrained, load it back "
        "with from_pretrained and predict one scan. Needs no network and no data. "
        "The phantom is a toy: its accuracy says the pipeline works, nothing about CT.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("resnet3d-demo"),
        help="output folder (default ./resnet3d-demo; a previous demo there is replaced)",
    )
    parser.add_argument("--patients", type=int, default=120, help="phantom patients (default 120)")
    parser.add_argument("--size", type=int, default=64, help="slice size in px (default 64)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--model", default="resnet18", help="model (default resnet18)")
    parser.add_argument(
        "--lr",
        type=float,
        default=1e-4,
        help="Adam learning rate (default 1e-4: the paper's 1e-3 is for CC-CCII's 20,000 "
        "training volumes; on the demo's hundred it overfits at once)",
    )
    parser.add_argument(
        "--lesion-scale",
        type=float,
        default=4.0,
        help="size factor of the phantom's findings (default 4: at 64 px the opacities "
        "drawn at scale 1 are only a few pixels wide)",
    )
    parser.add_argument(
        "--augment",
        default="flip,shift",
        metavar="SPEC",
        help="training augmentation (default 'flip,shift': left-right flips and shifts of up "
        "to 1/16 of the slice size, 4 px at 64, keep ResNet-18 from memorising the demo's 72 "
        "training patients; 'none' to train as the paper does)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data, split and model")
    add_device_and_precision(
        parser,
        precision="auto",
        use="training",
        note="; evaluation and prediction run in fp32, as resnet3d evaluate does by default",
    )
    parser.add_argument(
        "--no-plots",
        action="store_true",
        help="skip the confusion-matrix and ROC pictures (they need matplotlib)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise CLIError(f"{out} exists and is not a previous demo's folder; choose --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import phantom
    from ..data.dataset import VolumeDataset
    from ..data.index import ScanIndex
    from ..data.volumes import SliceStacker
    from ..engine.checkpoint import run_metadata
    from ..engine.train import TrainConfig, Trainer
    from ..models.pretrained import from_pretrained
    from ..workflows import evaluate_model, load_or_make_split, model_from_checkpoint, predict_scans

    start = time.perf_counter()
    out: Path = args.out
    if not args.no_plots:
        require_plots()  # before the data and the training, not after them
    runtime = announce_runtime(
        args.device, args.precision, note=f" for training; evaluation in {EVAL_PRECISION}"
    )
    device = runtime.device
    _prepare_out(out)
    (out / MARKER).write_text(json.dumps({"patients": args.patients, "size": args.size}) + "\n")

    def step(n: int, text: str) -> None:
        print(f"[{n}/6 {time.perf_counter() - start:6.1f}s] {text}", flush=True)

    step(
        1,
        f"writing a synthetic chest-CT data set: {args.patients} patients, "
        f"{args.size} x {args.size} slices -> {out / 'data'}",
    )
    # Many short scans rather than a few long ones: patients, not slices, are what a model
    # needs to generalise. At 64 px the phantom's opacities are only a few pixels wide, so
    # the demo draws them larger (--lesion-scale).
    root = phantom.write_dataset(
        out / "data",
        patients=args.patients,
        size=args.size,
        seed=args.seed,
        slices=(12, 16),
        scans_per_patient=(1, 1),
        progress=not args.no_progress,
        lesion_scale=args.lesion_scale,
    )

    step(2, "indexing the scans and splitting them by patient (no patient in two splits)")
    index = ScanIndex.from_path(root)
    run_dir = out / "run"
    split = load_or_make_split(index, run_dir, fractions=(0.6, 0.2, 0.2), seed=args.seed)
    print(split.summary())
    stacker = SliceStacker(depth=4, size=(args.size, args.size), channels=3)
    train_set = VolumeDataset(split.train, stacker)
    valid_set = VolumeDataset(split.valid, stacker)
    test_set = VolumeDataset(split.test, stacker)

    step(
        3,
        f"training {args.model} on {len(train_set)} volumes of 3 x 4 x {args.size} x "
        f"{args.size} (validating on {len(valid_set)}) on {device}",
    )
    metadata = run_metadata(stacker.to_dict(), index.classes)
    # The checkpoints (model, optimizer and RNG states: 400 MB each for ResNet-18) live only
    # while they are needed; the export in step 5 is the model to keep.
    checkpoints = Path(tempfile.mkdtemp(prefix=".checkpoints-", dir=out))
    try:
        config = TrainConfig(
            out_dir=str(checkpoints),
            model=args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            lr_step=max(1, args.epochs - 2),
            seed=args.seed,
            device=str(device),
            precision=args.precision,
            progress=not args.no_progress,
            workers=0,
            monitor="loss",
            # Short runs move the weights faster than BatchNorm's running averages follow;
            # recomputing them before each validation keeps the eval-mode model sane.
            precise_bn=8,
            augment=args.augment,
        )
        trainer = Trainer(
            config, train_set, valid_set, index.classes, split_hash=split.hash, metadata=metadata
        )
        result = trainer.fit()
        shutil.copy2(trainer.log_path, run_dir / "log.csv")
        model = model_from_checkpoint(result.best_checkpoint or result.last_checkpoint)
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)

    step(4, f"evaluating the best epoch's model on {len(test_set)} volumes of held-out patients")
    evaluation = evaluate_model(
        model,
        test_set,
        out_dir=out / "eval",
        plots=not args.no_plots,
        device=str(device),
        precision=EVAL_PRECISION,
        split="test",
    )
    print(evaluation.summary())

    step(5, f"save_pretrained -> {out / 'export'}; from_pretrained reads it back")
    volume_report = evaluation.reports["volume"]
    model.save_pretrained(
        out / "export",
        preprocessing=stacker.to_dict(),
        labels=list(index.classes),
        metrics=[
            {
                "name": "accuracy",
                "value": volume_report.accuracy,
                "split": "test (phantom)",
                "unit": "volume",
            },
        ],
        dataset="resnet3d built-in phantom (synthetic)",
        description="resnet3d demo model trained on synthetic phantom data; a toy.",
    )
    loaded = from_pretrained(out / "export")
    probe = test_set[0][0].unsqueeze(0)
    with torch.no_grad():
        same = torch.allclose(model.cpu().eval()(probe), loaded.cpu().eval()(probe), atol=1e-6)
    if not same:
        raise CLIError("the reloaded model's outputs differ from the saved one")
    print("reloaded model gives the same outputs")

    scan = split.test[0]
    step(6, f"predicting one held-out scan: {scan.path} (true class {scan.label})")
    prediction = predict_scans(loaded, [scan.path], device=str(device), precision=EVAL_PRECISION)[0]
    probs = ", ".join(f"{k} {v:.3f}" for k, v in zip(prediction.labels, prediction.probs))
    print(f"  {prediction.n_volumes} volumes -> {prediction.label} ({probs})")

    accuracy = {level: report.accuracy for level, report in evaluation.reports.items()}
    summary = {
        "seconds": round(time.perf_counter() - start, 1),
        "device": str(device),
        "precision": runtime.precision,
        "test_accuracy": accuracy,
        "test_volumes": len(test_set),
        "chance": 1 / len(index.classes),
    }
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    accuracies = ", ".join(f"{level} {value:.3f}" for level, value in accuracy.items())
    print(f"demo finished in {summary['seconds']} s: test accuracy {accuracies} (chance 0.333)")
    print(_where_it_wrote(out))
    return 0


# What each folder of the demo's output holds, for the closing lines.
CONTENTS = {
    "data": "the synthetic scans (CC-CCII layout)",
    "run": "patient split and training log",
    "eval": "metrics (evaluation.json) and plots",
    "export": "the trained model: resnet3d.from_pretrained(this folder)",
}


def _where_it_wrote(out: Path) -> str:
    """Where the demo wrote, how big it is, and the command that evaluates its model again."""
    lines = [f"wrote {out.resolve()} ({_size(folder_bytes(out))}):"]
    for name, what in CONTENTS.items():
        if (out / name).exists():
            lines.append(f"  {name + '/':<8}{_size(folder_bytes(out / name)):>9}  {what}")
    export, data, split = (shlex.quote(str(out / p)) for p in ("export", "data", "run/split.json"))
    lines.append(
        f"evaluate it again: resnet3d evaluate --pretrained {export} --data {data} "
        f"--split-file {split}"
    )
    return "\n".join(lines)


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (links not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e3:.0f} kB" if n_bytes < 1e6 else f"{n_bytes / 1e6:.1f} MB"

"""``resnet3d export``: a training checkpoint to a Hub-ready folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="turn a training checkpoint into a Hub-ready folder",
        description="Write OUT_DIR with model.safetensors, config.json (architecture, "
        "preprocessing spec, labels, metrics) and a model card README.md, from a checkpoint "
        "written by 'resnet3d train' (read with torch.load(weights_only=True)). OUT_DIR must be "
        "new or empty (--overwrite replaces only those three files); it is written "
        "atomically. Publish it with 'resnet3d push OUT_DIR ORG/NAME'.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="e.g. runs/x/best.pt")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="export folder to write")
    parser.add_argument(
        "--eval-json",
        type=Path,
        metavar="F",
        help="evaluation.json of this checkpoint (from 'resnet3d evaluate'): its accuracy and "
        "macro precision/recall/F1/AUROC per level go into config.json and the model card",
    )
    parser.add_argument(
        "--split",
        help="which data --eval-json was measured on, e.g. 'CC-CCII test' (default: the "
        "split that 'resnet3d evaluate' recorded in the file, e.g. 'test split')",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder that is not empty, replacing only model.safetensors, "
        "config.json and README.md (other files are kept)",
    )
    parser.add_argument("--license", help="SPDX license id of the weights, e.g. apache-2.0")
    parser.add_argument("--dataset", help="training data, one line for the model card")
    parser.add_argument("--description", help="one line describing the model, for the card")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export the checkpoint; print where it went and the weights' sha256."""
    from .._utils import sha256_file
    from ..engine.export import export_checkpoint
    from ..models.pretrained import load_export_config
    from ..weights.export_format import WEIGHTS_NAME

    folder = export_checkpoint(
        args.checkpoint,
        args.out_dir,
        eval_json=args.eval_json,
        split=args.split,
        license=args.license,
        dataset=args.dataset,
        description=args.description,
        overwrite=args.overwrite,
    )
    meta = load_export_config(folder)
    config = meta["config"]
    print(f"exported {args.checkpoint} -> {folder}")
    print(f"  model     {config.name or 'custom'} ({config.in_channels} -> {config.num_classes})")
    print(f"  labels    {', '.join(meta.get('labels') or []) or 'not recorded'}")
    spec = meta.get("preprocessing")
    print(f"  input     {spec if spec else 'no preprocessing spec recorded'}")
    print(f"  metrics   {len(meta['metrics'])}")
    print(f"  sha256    {sha256_file(folder / WEIGHTS_NAME)}  {WEIGHTS_NAME}")
    print(f"publish with: resnet3d push {folder} ORG/NAME")
    return 0

"""``resnet3d models``: list the registered models with their parameter counts."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the models and their parameter counts",
        description="List every registered model with its parameter count "
        "(for --in-channels and --num-classes, default 3 and 3).",
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*'")
    parser.add_argument("--in-channels", type=int, default=3, help="input channels (default 3)")
    parser.add_argument("--num-classes", type=int, default=3, help="classes (default 3)")
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="list the pretrained weights table (aliases for from_pretrained) instead",
    )
    parser.set_defaults(func=run)


def run_pretrained(pattern: str) -> int:
    """Print the weights table: alias, architecture, input, status."""
    from ..weights.table import entries

    rows = []
    for entry in entries(pattern):
        spec = entry.preprocessing
        size = spec.get("size")
        hw = "x".join(map(str, size)) if isinstance(size, (list, tuple)) else str(size)
        status = (
            f"{entry.repo_id}@{(entry.revision or '')[:12]}" if entry.published else "not published"
        )
        rows.append(
            (
                entry.alias,
                entry.architecture,
                str(spec.get("channels")),
                str(spec.get("depth")),
                hw,
                status,
            )
        )
    if not rows:
        print(f"no pretrained alias matches {pattern!r}; try 'resnet3d models --pretrained'")
        return 1
    header = ("alias", "model", "channels", "depth", "size", "weights")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    if not any(entry.published for entry in entries(pattern)):
        print(
            "\nno weights are published yet; 'resnet3d.from_pretrained(ALIAS)' prints the "
            "training recipe that produces them"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.pretrained:
        return run_pretrained(args.pattern)
    import torch

    from ..models.factory import create_model
    from ..models.registry import list_models

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}; try 'resnet3d models'")
        return 1
    rows = []
    for name in names:
        # The meta device allocates nothing: counting parameters takes no time or memory.
        with torch.device("meta"):
            model = create_model(name, in_channels=args.in_channels, num_classes=args.num_classes)
        params = sum(p.numel() for p in model.parameters())
        cfg = model.config
        rows.append(
            (
                name,
                f"{params / 1e6:.2f}M",
                cfg.block,
                "x".join(map(str, cfg.layers)),
                cfg.conv,
                cfg.shortcut,
            )
        )
    header = ("model", "params", "block", "layers", "conv", "shortcut")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0

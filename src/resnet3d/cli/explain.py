"""``resnet3d explain``: heatmaps of one scan (Grad-CAM or occlusion), one overlay PNG per slice."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CLIError
from ._common import add_model_source, add_stacker_args, load_model, stacker_kwargs

# resnet3d.explain.METHODS and FILLS, spelled out so that building the parser does not import
# torch (a test keeps them equal).
METHODS = ("gradcam", "gradcam++", "layercam", "occlusion")
FILLS = ("mean", "zero")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="heatmaps of a scan (Grad-CAM or occlusion): one overlay PNG per slice and a "
        "contact sheet",
        description="Show where the model looked: the scan is stacked into volumes as the "
        "model's preprocessing spec says, each volume's map for the target class "
        "(default: the scan's predicted class) is mapped back to the scan's slices, and "
        "OUT/slice_0000.png ... (slice in gray, heatmap in colour, predicted class and "
        "probability), OUT/contact_sheet.png and OUT/explanation.json are written. Grad-CAM's "
        "default layer is the deepest stage that still resolves depth (layer1 for the "
        "paper's stem at depth 4). --method occlusion hides one window of the input at a "
        "time and maps the drop of the class score: one forward pass per window, slower, but "
        "it measures the model itself.",
    )
    parser.add_argument(
        "scan",
        type=Path,
        metavar="SCAN_DIR",
        help="a scan folder of slices, a NIfTI file or a video file (one overlay per frame)",
    )
    add_model_source(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--target",
        default=None,
        metavar="CLASS",
        help="class to explain, name or index (default: the scan's predicted class)",
    )
    parser.add_argument(
        "--layer",
        default="auto",
        help="module whose feature maps are weighted, e.g. layer3 (default auto: the deepest "
        "stage whose output has depth > 1)",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="gradcam",
        help="heatmap method (default gradcam)",
    )
    parser.add_argument(
        "--patch",
        type=int,
        default=None,
        metavar="PIXELS",
        help="occlusion window, in-plane side in pixels, through the whole depth (default "
        "1/8 of the slice)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        metavar="PIXELS",
        help="occlusion step in pixels (default half the window)",
    )
    parser.add_argument(
        "--fill",
        choices=FILLS,
        default="mean",
        help="what an occluded window holds: the volume's mean (default) or zeros",
    )
    parser.add_argument(
        "--normalize",
        choices=("scan", "volume"),
        default="scan",
        help="scale heatmaps to [0, 1] over the whole scan (default) or per volume",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="heatmap opacity at full heat (default 0.5)"
    )
    parser.add_argument(
        "--min-size",
        type=int,
        default=256,
        help="upscale overlays smaller than this many pixels (default 256; 0 keeps the size)",
    )
    parser.add_argument(
        "--tile", type=int, default=128, help="slice size on the contact sheet (default 128)"
    )
    parser.add_argument("--columns", type=int, default=None, help="contact sheet columns")
    parser.add_argument("--batch-size", type=int, default=8, help="volumes per pass (default 8)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: CUDA if present)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_stacker_args(parser, defaults=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.device import resolve_device
    from ..explain import explain_scan
    from ..explain.scan import slice_word
    from ..workflows import stacker_for

    if not args.scan.exists():
        raise CLIError(f"scan not found: {args.scan}")
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out} exists and is not a folder")
    if args.method != "occlusion" and (args.patch is not None or args.stride is not None):
        raise CLIError(f"--patch and --stride apply to --method occlusion, not {args.method}")
    if args.method == "occlusion" and args.layer != "auto":
        raise CLIError("--layer applies to the class activation maps; occlusion has no layer")
    model = load_model(args)
    stacker = stacker_for(model, **stacker_kwargs(args))
    model = model.to(resolve_device(args.device)).eval()
    # A class index given on the command line arrives as text; a label that is itself a
    # number (e.g. "0") stays a name.
    target: str | int | None = args.target
    labels = (model.pretrained_cfg or {}).get("labels") or []
    if args.target is not None and args.target.isdigit() and args.target not in labels:
        target = int(args.target)
    result = explain_scan(
        model,
        args.scan,
        stacker,
        args.out,
        target=target,
        layer=args.layer,
        method=args.method,
        patch=args.patch,
        stride=args.stride,
        fill=args.fill,
        normalize=args.normalize,
        batch_size=args.batch_size,
        alpha=args.alpha,
        min_size=args.min_size or None,
        tile=args.tile,
        columns=args.columns,
        progress=not args.no_progress,
    )
    probs = ", ".join(f"{k} {v:.3f}" for k, v in zip(result.labels, result.probs))
    print(f"{result.scan}: {result.prediction} ({probs})")
    d, h, w = result.feature_shape
    where = (
        f"over a grid of {d} x {h} x {w} windows"
        if result.method == "occlusion"
        else f"at {result.layer} (feature map {d} x {h} x {w})"
    )
    unit = slice_word(result.scan)
    volume = "clip" if unit == "frame" else "volume"
    print(
        f"{result.method} of class {result.target_label} {where}, {result.n_slices} {unit}s, "
        f"{len(result.volume_probs)} {volume}s"
    )
    uncovered = int((~result.covered).sum())
    if uncovered:
        print(
            f"note: {uncovered} {unit}s belong to no {volume} (remainder={stacker.remainder!r}) "
            "and show no heatmap; --remainder overlap covers them"
        )
    print(f"wrote {len(result.files)} overlays, {result.contact_sheet} and {result.summary}")
    return 0

"""``resnet3d push``: upload an export folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``push`` subcommand."""
    parser = subparsers.add_parser(
        "push",
        help="upload an export folder to a Hugging Face Hub repo",
        description="Check OUT_DIR (a folder from 'resnet3d export' or save_pretrained: its "
        "weights must load strictly), create REPO_ID if needed and upload the export in one "
        "commit. Uses the token saved by 'hf auth login' or HF_TOKEN. Prints the commit and "
        "the weights-table entry that pins it.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the export folder")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub repo, 'org/name'")
    parser.add_argument("--revision", help="branch to commit to (default main)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead")
    parser.add_argument("--message", help="commit message")
    parser.add_argument(
        "--alias", help="alias for the printed weights-table entry (default: the repo name)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Upload and print the pinned commit and sha256."""
    from ..models.pretrained import upload_folder
    from ..weights.export_format import entry_from_export

    info = upload_folder(
        args.out_dir,
        args.repo_id,
        revision=args.revision,
        private=True if args.private else None,
        commit_message=args.message,
        create_pr=args.create_pr,
    )
    alias = args.alias or args.repo_id.split("/", 1)[1].lower()
    entry = entry_from_export(args.out_dir, alias=alias, repo_id=args.repo_id, revision=info.oid)
    print(f"pushed {args.out_dir} -> {args.repo_id} at commit {info.oid}")
    print(f"  {info.pr_url or info.commit_url}")
    print(f"  sha256 {entry.sha256}  {entry.filename}")
    print("load it with:")
    print(f"  resnet3d.from_pretrained({args.repo_id!r}, revision={info.oid!r})")
    print("pin it in the weights table with:")
    print(
        f"  register_pretrained(PretrainedEntry(alias={entry.alias!r}, "
        f"architecture={entry.architecture!r}, repo_id={entry.repo_id!r}, "
        f"revision={entry.revision!r}, sha256={entry.sha256!r}, "
        f"preprocessing={dict(entry.preprocessing)!r}, labels={entry.labels!r}))"
    )
    return 0

"""``resnet3d sweep`` and ``resnet3d explain`` on a tiny synthetic video set: a one-cell sweep
(random clips per epoch) trains and evaluates clips, videos and groups, and explain writes one
Grad-CAM (and occlusion) overlay per frame from the cell's checkpoint."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from resnet3d.cli import main
from resnet3d.sweep.runner import CELL_FILE, PLAN_FILE

pytest.importorskip("av")


def run_cli(argv: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 videos per class in 3 groups, 8 frames of 16 x 16: 12 tiny mp4 files."""
    from resnet3d.data.synthetic_video import write_video_dataset

    root = tmp_path_factory.mktemp("tools") / "videos"
    return write_video_dataset(root, videos_per_class=3, groups=3, frames=8, size=16, seed=7)


@pytest.fixture(scope="module")
def swept(videos: Path) -> tuple[Path, str]:
    """A one-cell sweep (depth 4, resnet10, 1 epoch, random clips) over the videos."""
    out = videos.parent / "sweep"
    argv = ["sweep", "--data", str(videos), "--out", str(out), "--grid", "depth=4"]
    argv += ["--model", "resnet10", "--size", "16", "--epochs", "1", "--batch-size", "4"]
    argv += ["--workers", "0", "--precision", "fp32", "--clip-sampling", "random"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        code, printed = run_cli(argv)
    assert code == 0, printed
    return out, printed


def test_sweep_on_videos_trains_and_evaluates_clips_videos_and_groups(
    swept: tuple[Path, str],
) -> None:
    out, printed = swept
    assert "1 of 1 cells done" in printed
    (entry,) = json.loads((out / PLAN_FILE).read_text())["cells"]
    cell_dir = out / entry["folder"]
    cell = json.loads((cell_dir / CELL_FILE).read_text())
    assert cell["status"] == "done" and cell["settings"]["clip_sampling"] == "random"
    state = torch.load(cell_dir / "last.pt", map_location="cpu", weights_only=False)
    assert state["train_config"]["clip_sampling"] == "random"
    document = json.loads((cell_dir / "eval" / "evaluation.json").read_text())
    assert document["level_names"] == {"volume": "clip", "scan": "video", "patient": "group"}
    counts = [document["levels"][level]["n_samples"] for level in ("volume", "scan", "patient")]
    assert counts == [8, 4, 4]  # the test split: one group (a video) per class, 2 clips each
    for name in ("sweep.json", "sweep.csv", "sweep.md"):
        assert (out / name).is_file()
    report = (out / "sweep.md").read_text()
    assert entry["name"] in report
    # The report names the video levels, and a missing COVID-19 class is no problem here.
    assert "| status | clip | video | group |" in report and "no class 'NCP'" not in report
    (row,) = json.loads((out / "sweep.json").read_text())["cells"]
    assert row["level_names"] == {"volume": "clip", "scan": "video", "patient": "group"}


@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
def test_explain_writes_one_overlay_per_frame(
    swept: tuple[Path, str], videos: Path, tmp_path: Path, method: str
) -> None:
    out, _ = swept
    (checkpoint,) = out.glob("runs/*/best.pt")
    video = videos / "up" / "v_up_g01_c01.mp4"
    argv = ["explain", "--checkpoint", str(checkpoint), str(video), "--out", str(tmp_path)]
    argv += ["--method", method, "--no-progress"]
    if method == "occlusion":
        argv += ["--patch", "8"]
    code, printed = run_cli(argv)
    assert code == 0, printed
    assert "8 frames, 2 clips" in printed
    summary = json.loads((tmp_path / "explanation.json").read_text())
    assert (summary["n_slices"], summary["n_volumes"], summary["method"]) == (8, 2, method)
    assert summary["uncovered_slices"] == []
    assert sorted(p.name for p in tmp_path.glob("slice_*.png")) == [
        f"slice_{i:04d}.png" for i in range(8)
    ]
    assert (tmp_path / "contact_sheet.png").is_file()

"""``resnet3d sweep`` end to end on the tiny phantom: results, restarts, a killed sweep, errors.

The cells' processes run with one intra-op thread: on a CPU, torch's results are bitwise
reproducible at a fixed thread count (tests/test_determinism.py), and pinning it keeps the
comparison of two sweeps independent of the machine's core count. (One session saw 2 of 8
two-thread runs differ on a busy machine; 41 later runs at 2 threads did not, so the cause
is unknown: see docs/training.md, "Determinism".)
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet3d.cli import main
from resnet3d.sweep import sweep
from resnet3d.sweep.cell import KILL_AFTER_EPOCHS_ENV
from resnet3d.sweep.runner import CELL_FILE, PLAN_FILE

ROOT = Path(__file__).resolve().parents[1]
# Two epochs, so that the killed sweep below stops a cell between them.
TINY = ["sweep", "--tiny", "--epochs", "2"]
CELL_KEYS = {
    "name",
    "settings",
    "varied",
    "status",
    "train_seconds",
    "samples_per_second",
    "best_val_accuracy",
    "epochs",
    "started",
    "finished",
    "error",
}
HAS_REPORT = importlib.util.find_spec("resnet3d.sweep.report") is not None


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def run_cli(argv: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An uninterrupted tiny sweep (two depths, two epochs) and what it printed."""
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        code, printed = run_cli([*TINY, "--out", str(out)])
    assert code == 0, printed
    return out, printed


def cells_of(out: Path) -> list[dict]:
    plan = json.loads((out / PLAN_FILE).read_text())
    return [json.loads((out / c["folder"] / CELL_FILE).read_text()) for c in plan["cells"]]


def evaluations(out: Path) -> dict[str, str]:
    return {p.parts[-3]: p.read_text() for p in sorted(out.glob("runs/*/eval/evaluation.json"))}


def metric_columns(out: Path) -> list[dict]:
    """The report's rows without timings (they differ from run to run)."""
    document = json.loads((out / "sweep.json").read_text())
    timing = {"train_seconds", "samples_per_second", "started", "finished"}
    return [{k: v for k, v in cell.items() if k not in timing} for cell in document["cells"]]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_tiny_sweep_writes_plan_cells_evaluations_and_progress(tiny: tuple[Path, str]) -> None:
    out, printed = tiny
    plan = json.loads((out / PLAN_FILE).read_text())
    assert plan["format"] == 1 and plan["split_file"] == "split.json"
    assert [c["varied"] for c in plan["cells"]] == [{"depth": 2}, {"depth": 4}]
    shared_split = (out / "split.json").read_text()
    for entry, record in zip(plan["cells"], cells_of(out)):
        folder = out / entry["folder"]
        assert set(record) == CELL_KEYS
        assert record["settings"] == entry["settings"]
        assert record["status"] == "done" and record["error"] is None
        assert record["epochs"] == 2
        assert record["train_seconds"] > 0 and record["samples_per_second"] > 0
        assert 0 <= record["best_val_accuracy"] <= 1
        assert (folder / "split.json").read_text() == shared_split
        for name in ("last.pt", "best.pt", "log.csv", "cell.log"):
            assert (folder / name).is_file(), name
        evaluation = json.loads((folder / "eval" / "evaluation.json").read_text())
        assert evaluation["split"] == "test"
        assert set(evaluation["levels"]) == {"volume", "scan", "patient"}
        assert "ci" in json.dumps(evaluation["levels"]["patient"])  # bootstrap intervals
    lines = printed.splitlines()
    assert re.search(r"^\[1/2\] queued   depth=2  runs/depth-2-[0-9a-f]{8}$", printed, re.M)
    assert "[1/2] running  depth=2" in lines
    assert re.search(
        r"^\[2/2\] done     depth=4  \dm\d\ds  best val acc [01]\.\d{4}$", printed, re.M
    )
    if HAS_REPORT:
        assert (out / "sweep.json").is_file()


def test_rerun_skips_done_cells(tiny: tuple[Path, str]) -> None:
    out, _ = tiny
    before = cells_of(out)
    code, printed = run_cli([*TINY, "--out", str(out)])
    assert code == 0
    assert "running" not in printed
    assert len(re.findall(r"^\[\d/2\] done ", printed, re.M)) == 2
    assert cells_of(out) == before


def test_dry_run_shows_the_plan_and_runs_nothing(tiny: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = tiny
    code, printed = run_cli([*TINY, "--out", str(out), "--dry-run"])
    assert code == 0 and "2 cells: 2 done, 0 to run" in printed
    # Another base option is another cell: new folders, the finished ones untouched.
    folders = sorted(p.name for p in (out / "runs").iterdir())
    code, printed = run_cli([*TINY, "--out", str(out), "--dry-run", "--lr", "0.01"])
    assert code == 0 and "2 cells: 0 done, 2 to run" in printed
    new = re.findall(r"runs/(depth-\d-[0-9a-f]{8})$", printed, re.M)
    assert len(new) == 2 and not set(new) & set(folders)
    assert sorted(p.name for p in (out / "runs").iterdir()) == folders
    # A dry run writes nothing, not even its folder; it needs no data.
    fresh = tmp_path / "fresh"
    code, printed = run_cli(["sweep", "--out", str(fresh), "--paper", "all", "--dry-run"])
    assert code == 0 and "16 cells: 0 done, 16 to run" in printed
    assert "[16/16] queued" in printed
    assert not fresh.exists()


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_results(tiny: tuple[Path, str], tmp_path: Path) -> None:
    reference, _ = tiny
    out = tmp_path / "killed"
    env = {**os.environ, KILL_AFTER_EPOCHS_ENV: "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "resnet3d", *TINY, "--out", str(out)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    # The first cell killed its sweep with SIGKILL after its first epoch's checkpoints.
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    first, second = cells_of(out)
    assert (first["status"], second["status"]) == ("running", "queued")
    log = out / "runs" / first["name"] / "log.csv"
    assert len(log.read_text().splitlines()) == 2  # header and epoch 1
    assert not (out / "runs" / first["name"] / "eval").exists()

    code, printed = run_cli([*TINY, "--out", str(out)])
    assert code == 0, printed
    assert "resumes after epoch 1" in printed
    assert all(c["status"] == "done" for c in cells_of(out))
    assert evaluations(out) == evaluations(reference)
    for name in evaluations(out):
        for checkpoint in ("best.pt", "last.pt"):
            mine = weights(out / "runs" / name / checkpoint)
            theirs = weights(reference / "runs" / name / checkpoint)
            assert all(torch.equal(mine[k], theirs[k]) for k in theirs), (name, checkpoint)
    if HAS_REPORT:
        assert metric_columns(out) == metric_columns(reference)


@pytest.mark.slow
def test_cells_in_parallel_on_cpu_give_the_same_results(
    tiny: tuple[Path, str], tmp_path: Path
) -> None:
    reference, _ = tiny
    out = tmp_path / "parallel"
    code, printed = run_cli([*TINY, "--out", str(out), "--devices", "cpu,cpu"])
    assert code == 0, printed
    # Both cells start before either ends.
    assert printed.index("[2/2] running") < printed.index("[1/2] done")
    assert evaluations(out) == evaluations(reference)


@pytest.mark.slow
def test_nproc_runs_each_cell_under_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    argv = ["sweep", "--tiny", "--grid", "depth=2", "--nproc", "2", "--device", "cpu"]
    code, printed = run_cli([*argv, "--out", str(out)])
    assert code == 0, printed
    (record,) = cells_of(out)
    assert record["status"] == "done" and record["settings"]["nproc"] == 2
    state = torch.load(out / "runs" / record["name"] / "last.pt", weights_only=True)
    assert state["world_size"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tiny", "--nproc", "0"], "nproc must be an int >= 1"),
        (["--tiny", "--grid", "dpeth=2"], "unknown grid field 'dpeth'.*Did you mean 'depth'"),
        (["--tiny", "--grid", "depth=2", "--paper", "depth"], "--tiny writes its own"),
        (["--grid", "depth=2"], "--data is required"),
        (["--tiny", "--devices", "cpu,cpu", "--nproc", "3"], "not a multiple of nproc 3"),
        (["--tiny", "--devices", "cpu,0"], "mixes 'cpu' and GPUs"),
    ],
)
def test_errors_are_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", *argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(f"^resnet3d sweep: error: .*{message}", err), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_devices_without_cuda_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", "--tiny", "--devices", "0,1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists()


def test_data_without_a_grid_is_an_empty_sweep(
    tiny: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny[0] / "data"
    assert main(["sweep", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "empty sweep" in capsys.readouterr().err


def test_a_split_that_does_not_fit_is_refused(
    tiny: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = tiny
    split = json.loads((out / "split.json").read_text())
    dropped = dict(split, patients={k: v[1:] for k, v in split["patients"].items()})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dropped))
    target = tmp_path / "new"
    argv = ["sweep", "--data", str(out / "data"), "--grid", "depth=2", "--split", str(bad)]
    assert main([*argv, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "not in the split" in err and len(err.strip().splitlines()) == 1
    assert not (target / "split.json").exists()
    # The sweep's cells were trained on its own split: another one is refused there.
    assert main([*argv, "--out", str(out)]) == 2
    assert "holds another split" in capsys.readouterr().err


def test_a_cell_folder_of_other_settings_is_an_error(tmp_path: Path) -> None:
    (cell,) = sweep(None, tmp_path, grids=["depth=2"], dry_run=True).cells
    folder = tmp_path / cell.folder
    folder.mkdir(parents=True)
    (folder / CELL_FILE).write_text(json.dumps({"settings": {"depth": 3}}))
    with pytest.raises(ValueError, match="belongs to a cell with other settings"):
        sweep(None, tmp_path, grids=["depth=2"], dry_run=True)


def test_workflows_sweep_is_the_sweep_and_imported_on_demand() -> None:
    from resnet3d import workflows

    assert workflows.sweep is sweep
    code = "import sys, resnet3d.workflows; print('resnet3d.sweep' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_a_failed_cell_is_recorded_and_the_others_run(
    tiny: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 8-slice scans make no 16-slice volume: that cell's training set is empty.
    out = tmp_path / "failing"
    data = tiny[0] / "data"
    argv = ["sweep", "--data", str(data), "--out", str(out), "--grid", "depth=16"]
    tiny_recipe = ["--model", "resnet10", "--size", "32", "--epochs", "1", "--workers", "0"]
    assert main([*argv, *tiny_recipe, "--fractions", "0.34", "0.33", "0.33"]) == 2
    captured = capsys.readouterr()
    (record,) = cells_of(out)
    assert record["status"] == "failed"
    assert record["error"] == "the training set is empty: no volumes to train on"
    assert "[1/1] failed   depth=16" in captured.out and record["error"] in captured.out
    assert "1 cell(s) failed" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_gpu_devices_make_one_slot_per_group_of_nproc(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet3d.engine import device
    from resnet3d.sweep import runner

    monkeypatch.setattr(device, "check_device", lambda name: name)  # as if 4 GPUs
    slots = runner._slots(["0", "1", "2", "3"], 2, None)
    assert [s.env for s in slots] == [
        {"CUDA_VISIBLE_DEVICES": "0,1"},
        {"CUDA_VISIBLE_DEVICES": "2,3"},
    ]
    assert {s.device for s in slots} == {"cuda"}
    assert len(runner._slots([0, 1, 2], 1, "cuda")) == 3
    with pytest.raises(ValueError, match="leave device out"):
        runner._slots(["0"], 1, "cuda:1")
    with pytest.raises(ValueError, match="lists a GPU twice"):
        runner._slots(["0", "0"], 1, None)
    with pytest.raises(ValueError, match="'x' is not a GPU index"):
        runner._slots(["x"], 1, None)

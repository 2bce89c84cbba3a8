"""Benchmark machinery: blocked timing, environment, FLOPs, variants, and each script's --quick.

No test asserts a timing: the scripts' quick runs check that the JSON and markdown outputs
exist and hold the expected rows.
"""

from __future__ import annotations

import json
import math
import runpy
import statistics
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet3d import create_model
from resnet3d.benchmarking.data import workers_needed
from resnet3d.benchmarking.environment import allocator, environment
from resnet3d.benchmarking.flops import count_flops, peak_flops
from resnet3d.benchmarking.report import fmt, markdown_table, write_result
from resnet3d.benchmarking.timing import Timing, time_blocked
from resnet3d.benchmarking.variants import Variant, default_variant, make_step, parse_variants
from resnet3d.cli import main

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def restore_threads():
    # --threads changes torch's global thread count; keep it from leaking into other tests.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- timing
def test_time_blocked_runs_blocks_in_interleaved_passes() -> None:
    log: list[str] = []
    fns = {name: (lambda name=name: log.append(name)) for name in ("a", "b")}
    timings = time_blocked(fns, warmup=2, calls=3, passes=2)
    # warm-up a a b b; then per pass: 1 re-warm + 3 timed calls of a, then of b.
    assert log == ["a", "a", "b", "b"] + (["a"] * 4 + ["b"] * 4) * 2
    for timing in timings.values():
        assert [len(p) for p in timing.passes] == [3, 3]
        assert timing.n == 6
        assert timing.first_call_s is not None and timing.first_call_s >= 0
        assert timing.peak_memory_bytes is None  # CPU: no CUDA memory statistics


def test_time_blocked_records_a_failing_configuration_and_goes_on() -> None:
    calls = {"ok": 0, "bad": 0}

    def ok() -> None:
        calls["ok"] += 1

    def bad() -> None:
        calls["bad"] += 1
        if calls["bad"] > 2:  # warm-up passes, then it runs out of memory
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore text")

    with pytest.raises(RuntimeError, match="out of memory"):
        time_blocked({"bad": bad}, warmup=2, calls=2, passes=2)
    calls["bad"] = 0
    timings = time_blocked({"ok": ok, "bad": bad}, warmup=2, calls=2, passes=2, record_errors=True)
    assert timings["ok"].ok and timings["ok"].n == 4
    assert not timings["bad"].ok and timings["bad"].passes == []
    assert timings["bad"].error == ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert math.isnan(timings["bad"].median)
    assert calls["bad"] == 3  # not called again after failing


def test_timing_statistics_match_statistics_module() -> None:
    timing = Timing(passes=[[0.3, 0.1, 0.2], [0.5, 0.4, 0.6]])
    assert timing.median == statistics.median([0.3, 0.1, 0.2, 0.5, 0.4, 0.6])
    assert timing.min == 0.1
    assert timing.pass_medians == [0.2, 0.5]
    assert timing.spread == pytest.approx(2.5)
    doc = timing.to_dict()
    assert doc["times_s"] == timing.passes and doc["n"] == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calls": 0}, "calls must be"),
        ({"passes": -1}, "passes must be"),
        ({"warmup": 0}, "warmup"),
    ],
)
def test_time_blocked_rejects_bad_counts(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        time_blocked({"a": lambda: None}, **kwargs)
    with pytest.raises(ValueError, match="empty"):
        time_blocked({})


# ------------------------------------------------------------------------ environment
@pytest.mark.parametrize(
    ("preload", "expected"),
    [
        ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "tcmalloc"),
        ("/opt/lib/libjemalloc.so.2", "jemalloc"),
        ("", "glibc"),
    ],
)
def test_allocator_reads_ld_preload(tmp_path: Path, preload: str, expected: str) -> None:
    maps = tmp_path / "maps"
    maps.write_text("7f00 r-xp /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert allocator({"LD_PRELOAD": preload}, maps_path=str(maps)) == expected


def test_allocator_reads_the_memory_map_without_ld_preload(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text("7f00 r-xp /usr/lib/libjemalloc.so.2\n")
    assert allocator({}, maps_path=str(maps)) == "jemalloc"
    assert allocator({}, maps_path=str(tmp_path / "missing")) == "glibc"


def test_environment_describes_the_cpu_and_torch() -> None:
    env = environment("cpu")
    assert env["torch"] == torch.__version__
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["allocator"] in ("glibc", "tcmalloc", "jemalloc", "mimalloc")
    assert isinstance(env["malloc_tuned"], bool)
    assert set(env["cpu"]["flags"]) >= {"avx2", "avx512f", "amx_bf16"}
    assert "gpu" not in env
    json.dumps(env)  # JSON-able


# ------------------------------------------------------------------------------ FLOPs
def test_count_flops_matches_the_analytic_count() -> None:
    model = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 2 * 4 * 4, 5)
    )
    count = count_flops(model, (3, 2, 4, 4))
    conv = 2 * 8 * 3 * 27 * (2 * 4 * 4)  # 2 x MACs: out channels x in x kernel x out voxels
    linear = 2 * (8 * 2 * 4 * 4) * 5
    assert count.forward == conv + linear
    # Backward: weight gradients of both layers (= their forward FLOPs), the input gradient
    # of the linear layer, none for the network input (it needs no gradient).
    assert count.forward_backward == 2 * (conv + linear) + linear


def test_count_flops_resnet18_at_the_paper_input_matches_the_issue() -> None:
    count = count_flops(create_model("resnet18"), (3, 4, 512, 512))
    assert count.forward / 1e9 == pytest.approx(101.6, abs=0.05)
    assert count.forward_backward / 1e9 == pytest.approx(270.2, abs=0.05)
    with pytest.raises(ValueError, match="C, D, H, W"):
        count_flops(create_model("resnet18"), (3, 4, 512))


def test_count_flops_done_by_the_fold() -> None:
    """The work the library does at the paper input: 48 % of resnet18's counted FLOPs
    multiply zero padding, and the fold skips them (the Conv3d count stays the default)."""
    model = create_model("resnet18")
    done = count_flops(model, (3, 4, 512, 512), conv_impl="auto")
    assert done.forward / 1e9 == pytest.approx(52.34, abs=0.05)
    assert done.forward_backward / 1e9 == pytest.approx(137.30, abs=0.05)
    # Deep volumes have no thin convolutions until the last stages: nearly all of it is done.
    deep = count_flops(model, (3, 32, 64, 64))
    assert count_flops(model, (3, 32, 64, 64), conv_impl="auto").forward > 0.95 * deep.forward
    assert model.config.conv_impl == "auto"  # counting leaves the model as it was


def test_peak_flops_table_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert peak_flops("cpu", "fp32").flops_per_s is None
    assert peak_flops("cpu", "fp32", override_tflops=2.5).flops_per_s == 2.5e12
    with pytest.raises(ValueError, match="positive"):
        peak_flops("cpu", "fp32", override_tflops=0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    bf16 = peak_flops("cuda", "bf16")
    assert bf16.flops_per_s == 989e12 and "H100 SXM" in bf16.source
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert peak_flops("cuda", "fp32").flops_per_s == 495e12
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert peak_flops("cuda", "fp32").flops_per_s == 67e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert peak_flops("cuda", "bf16").flops_per_s == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    unknown = peak_flops("cuda", "bf16")
    assert unknown.flops_per_s is None and "--peak-tflops" in unknown.source


# ---------------------------------------------------------------------------- variants
@pytest.mark.parametrize(
    "name",
    [
        "fp32",
        "fp32+cl",
        "bf16+cl",
        "bf16+cl+compile",
        "fp16+compile",
        "fp32+conv3d",
        "bf16+cl+conv3d",
    ],
)
def test_variant_names_round_trip(name: str) -> None:
    assert Variant.parse(name).name == name
    assert Variant.parse(name.upper().replace("+", " + ")) == Variant.parse(name)


@pytest.mark.parametrize(
    ("text", "message"), [("fp23", "'fp32'"), ("bf16+cll", "'cl'"), ("", "empty")]
)
def test_variant_parse_errors_name_the_closest(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Variant.parse(text)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_bench_cli_refuses_cuda_without_cuda(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "train", "--device", "cuda", "--quick"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_default_variants_are_what_the_trainer_and_predict_use(tmp_path: Path) -> None:
    from tests.helpers.toy import ToyVolumes

    from resnet3d.engine.train import TrainConfig, Trainer

    cpu = torch.device("cpu")
    trainer = Trainer(
        TrainConfig(out_dir=str(tmp_path), device="cpu", progress=False),
        ToyVolumes(4, 0),
        None,
        ["a", "b", "c"],
    )
    train = default_variant("train", cpu)
    assert (train.precision, train.channels_last, train.compile) == (
        trainer.precision,
        trainer.channels_last,
        trainer.config.compile,
    )
    variants, default = parse_variants(["fp32", "default"], "forward", cpu)
    assert default in variants and variants[0] == Variant()
    # Only what is named runs: the default too can be left out (it may hang on a machine).
    variants, default = parse_variants(["fp32", "fp32+cl"], "train", cpu)
    assert variants == [Variant(), Variant(channels_last=True)]
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        parse_variants(["fp16"], "train", cpu)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnet10", widths=(4, 8, 8, 16))


def test_make_step_forward_equals_the_model_and_leaves_it_unchanged() -> None:
    model = _tiny().eval()
    x = torch.rand(2, 3, 4, 16, 16)
    step, net = make_step(model, x, Variant(channels_last=True), "forward")
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(step(), expected, atol=1e-5, rtol=1e-5)
    assert net is not model
    assert next(model.parameters()).is_contiguous()  # the caller's model keeps its layout


def test_make_step_conv3d_variant_sets_the_copy_only() -> None:
    model = _tiny().eval()
    x = torch.rand(2, 3, 4, 16, 16)
    step, net = make_step(model, x, Variant.parse("fp32+conv3d"), "forward")
    assert net.config.conv_impl == "conv3d" and model.config.conv_impl == "auto"  # type: ignore[union-attr]
    with torch.no_grad():
        torch.testing.assert_close(step(), model(x), atol=1e-5, rtol=1e-5)
    _, net = make_step(model, x, Variant(), "forward")
    assert net.config.conv_impl == "auto"  # type: ignore[union-attr]


def test_make_step_train_runs_an_optimizer_step() -> None:
    model = _tiny()
    before = [p.detach().clone() for p in model.parameters()]
    step, net = make_step(
        model,
        torch.rand(2, 3, 4, 16, 16),
        Variant(),
        "train",
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-2),
    )
    assert step() is None
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in net.parameters())  # zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="mode"):
        make_step(model, torch.rand(2, 3, 4, 16, 16), Variant(), "predict")


def test_bf16_autocast_stays_within_tolerance_of_fp32() -> None:
    # The stated tolerance for bf16 variants (docs/performance.md): max |diff| <= 5% of max
    # |logit|; bf16 keeps 8 bits of mantissa, errors grow with depth but stay far below this.
    model = _tiny().eval()
    x = torch.rand(2, 3, 4, 16, 16)
    reference, _ = make_step(model, x, Variant(), "forward")
    bf16, _ = make_step(model, x, Variant("bf16", channels_last=True), "forward")
    ref, out = reference(), bf16().float()
    assert float((out - ref).abs().max()) <= 0.05 * float(ref.abs().max())
    assert torch.equal(out.argmax(1), ref.argmax(1))


# ---------------------------------------------------------------------------- helpers
def test_workers_needed_is_the_ceiling_of_the_rate_ratio() -> None:
    assert workers_needed(1464.0, 200.0) == 8
    assert workers_needed(400.0, 200.0) == 2
    assert workers_needed(0.5, 200.0) == 1
    with pytest.raises(ValueError, match="positive"):
        workers_needed(0.0, 1.0)


def test_markdown_table_and_strict_json(tmp_path: Path) -> None:
    table = markdown_table(["a", "b"], [["x|y", 1234.5678], ["z", None]])
    assert table.splitlines() == ["| a | b |", "| --- | ---: |", "| x\\|y | 1,235 |", "| z | - |"]
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(["a", "b"], [["only one"]])
    assert fmt(0.000123) == "0.000123" and fmt(float("nan")) == "-"
    json_path, md_path = write_result({"v": math.nan, "w": [math.inf, 1.0]}, "# t", tmp_path, "r")
    assert json.loads(json_path.read_text()) == {"v": None, "w": [None, 1.0]}
    assert md_path.read_text() == "# t\n"


# --------------------------------------------------------------------- CLI errors (fast)
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "models", "--variants", "fp33", "--models", "resnet18"], "fp32"),
        (["bench", "models", "--input", "3x4x32"], "CxDxHxW"),
        (["bench", "models", "--models", "resnet81"], "resnet18"),
        (["bench", "train", "--calls", "0"], "--calls must be >= 1"),
        (["bench", "models", "--device", "nope"], "nope"),
        (["bench", "data", "--data", "/nonexistent/scans", "--quick"], "not found"),
    ],
)
def test_bench_cli_user_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet3d bench: error:") and message in err


# ----------------------------------------------------------------- scripts, --quick (slow)
def _run_script(name: str, *args: str) -> None:
    argv = sys.argv
    sys.argv = [str(BENCHMARKS / name), *args]
    sys.path.insert(0, str(BENCHMARKS))
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
        assert exit_info.value.code == 0
    finally:
        sys.argv = argv
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.slow
def test_bench_models_quick(tmp_path: Path, restore_threads: None) -> None:
    _run_script(
        "bench_models.py", "--quick", "--device", "cpu", "--threads", "1", "--out", str(tmp_path)
    )
    doc = json.loads((tmp_path / "models-cpu-quick.json").read_text())
    markdown = (tmp_path / "models-cpu-quick.md").read_text()
    assert doc["benchmark"] == "models" and doc["environment"]["torch_threads"] == 1
    keys = {(r["mode"], r["model"], r["library"], r["variant"]) for r in doc["rows"]}
    for mode in ("forward", "train"):
        for variant in ("fp32", "fp32+cl"):
            assert (mode, "resnet18", "resnet3d", variant) in keys
            assert (mode, "resnet18", "monai", variant) in keys
            assert (mode, "resnet18_2plus1d", "resnet3d", variant) in keys
            # MONAI has no (2+1)D ResNet: no row, no ratio.
            assert (mode, "resnet18_2plus1d", "monai", variant) not in keys
        # Ours with Conv3d; MONAI has one way to run, so its fp32 row is the comparison.
        assert (mode, "resnet18", "resnet3d", "fp32+conv3d") in keys
        assert (mode, "resnet18", "monai", "fp32+conv3d") not in keys
    for row in doc["rows"]:
        settings = doc["settings"]
        assert row["ms_per_sample"] > 0
        assert row["timing"]["n"] == settings["calls"] * settings["passes"]
        if row["library"] == "resnet3d" and row["model"] == "resnet18":
            assert row["ratio_vs_monai"] > 0
        if row["mode"] == "forward" and row["library"] != "torchvision":
            # Same weights (ours loads MONAI's state dict): the outputs agree.
            assert row["max_rel_diff"] < 1e-4
    defaults = [r for r in doc["rows"] if r["is_default"]]
    assert {r["variant"] for r in defaults} == {
        default_variant(m, torch.device("cpu")).name for m in ("forward", "train")
    }
    # The FLOP table is at the paper's input for the models as benchmarked (tiny widths).
    flops = {f["model"]: f for f in doc["flops"]}
    tiny = create_model("resnet18", widths=tuple(doc["settings"]["widths"]))
    expected = count_flops(tiny, (3, 4, 512, 512))
    assert flops["resnet18"]["input"] == [3, 4, 512, 512]
    assert flops["resnet18"]["gflop_forward"] == pytest.approx(expected.forward / 1e9)
    assert flops["resnet18"]["gflop_forward_done"] < 0.6 * flops["resnet18"]["gflop_forward"]
    assert "GFLOP forward (done)" in markdown and "Conv3d/fold" in markdown
    assert {t["target"] for t in doc["targets"]} >= {"fp32 eager forward+backward, ours / MONAI"}
    assert "### Forward (inference" in markdown and "### Targets" in markdown
    assert "| resnet18 | fp32" in markdown and "| resnet18_2plus1d | fp32+cl" in markdown


@pytest.mark.slow
def test_bench_depths_quick(tmp_path: Path, restore_threads: None) -> None:
    _run_script(
        "bench_depths.py", "--quick", "--device", "cpu", "--threads", "1", "--out", str(tmp_path)
    )
    doc = json.loads((tmp_path / "depths-cpu-quick.json").read_text())
    markdown = (tmp_path / "depths-cpu-quick.md").read_text()
    assert doc["benchmark"] == "depths" and doc["settings"]["depths"] == [1, 4]
    assert {(r["depth"], r["mode"]) for r in doc["rows"]} == {
        (d, m) for d in (1, 4) for m in ("forward", "train")
    }
    for row in doc["rows"]:
        assert row["ours_ms"] > 0 and row["conv3d_ms"] > 0 and row["monai_ms"] > 0
        assert row["ours_vs_monai"] == pytest.approx(row["ours_ms"] / row["monai_ms"])
        # At depth 1 and 4 some convolutions are thin: the fold does less work.
        assert row["gflop_done"] < row["gflop_model"]
    assert "| depth | ours ms | ours Conv3d ms | MONAI ms |" in markdown


def test_bench_depths_refuses_bad_settings() -> None:
    from resnet3d.benchmarking.depths import bench_depths

    with pytest.raises(ValueError, match="without"):
        bench_depths(variant="fp32+conv3d")
    with pytest.raises(ValueError, match="positive"):
        bench_depths(depths=[0])


@pytest.mark.slow
def test_bench_train_quick(tmp_path: Path, restore_threads: None) -> None:
    _run_script(
        "bench_train.py",
        "--quick",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--variants",
        "default",
        "fp32+cl",
        "--out",
        str(tmp_path),
    )
    doc = json.loads((tmp_path / "train-cpu-quick.json").read_text())
    markdown = (tmp_path / "train-cpu-quick.md").read_text()
    default = default_variant("train", torch.device("cpu")).name
    variants = {r["variant"] for r in doc["rows"]}
    assert variants == {default, "fp32+cl"}
    for row in doc["rows"]:
        assert row["input"] == [3, 4, 32, 32] and row["batch"] == 2
        assert row["samples_per_s"] == pytest.approx(2 / row["timing"]["median_s"])
        assert row["gflop_per_sample"] == pytest.approx(
            count_flops(
                create_model("resnet18", widths=tuple(doc["settings"]["widths"])), (3, 4, 32, 32)
            ).forward_backward
            / 1e9
        )
    assert f"| 3x4x32x32 | 2 | {default} (default) |" in markdown


@pytest.mark.slow
def test_bench_data_quick(tmp_path: Path, restore_threads: None) -> None:
    _run_script(
        "bench_data.py",
        "--quick",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--train-rate",
        "50",
        "--out",
        str(tmp_path),
    )
    doc = json.loads((tmp_path / "data-cpu-quick.json").read_text())
    markdown = (tmp_path / "data-cpu-quick.md").read_text()
    settings = doc["settings"]
    assert settings["n_volumes"] == 3 * (8 // 4) and settings["size"] == 64
    keys = {(r["source"], r["workers"]) for r in doc["rows"]}
    assert keys == {(s, w) for s in ("PNG decode", "uint8 cache") for w in (None, 0, 1)}
    summary = doc["summary"]
    assert summary["train_rate"] == 50 and summary["train_rate_source"] == "given"
    r1 = summary["one_worker_volumes_per_s"]
    assert summary["feeding"][0]["workers_decode"] == workers_needed(50, r1["decode"])
    assert summary["feeding"][0]["workers_cache"] == workers_needed(50, r1["cache"])
    assert "workers = ceil(R / r1)" in markdown and "| uint8 cache | 1 workers |" in markdown


def test_centre_tap_bench_finds_the_same_gradients_both_ways(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from resnet3d.models import thin_depth

    argv = ["bench_centre_tap.py", "--model", "resnet10", "--size", "32", "--rounds", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--steps", "1", "--no-tune-malloc"])
    runpy.run_path(str(ROOT / "benchmarks" / "bench_centre_tap.py"), run_name="__main__")
    assert "gradients bit for bit equal: True" in capsys.readouterr().out
    assert thin_depth.centre_tap.__name__ == "centre_tap"  # restored

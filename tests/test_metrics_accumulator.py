"""MetricAccumulator: batches equal one call, index de-duplication, and a real 2-process run."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from resnet3d import metrics

torch = pytest.importorskip("torch")

NAMES = ["NCP", "CP", "Normal"]


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.2 * np.eye(3)[y]
    patients = [f"patient{i // 2}" for i in range(n)]
    y = np.repeat(y[::2], 2)[:n]  # both volumes of a patient share its label
    return y, logits, patients


def test_batches_equal_one_call() -> None:
    y, logits, patients = make_data(23)
    acc = metrics.MetricAccumulator(labels=NAMES, input="logits")
    for start in range(0, 23, 5):
        batch = slice(start, start + 5)
        acc.update(torch.tensor(logits[batch]), torch.tensor(y[batch]), patients[batch])
    assert len(acc) == 23 and acc.num_classes == 3
    got = acc.compute(how="mean").to_dict()
    want = metrics.classification_report(
        y, logits, labels=NAMES, input="logits", groups=patients
    ).to_dict()
    assert got == want


def test_repeated_indices_are_counted_once_and_sorted() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    labels = np.array([0, 1, 0, 1, 1])
    acc = metrics.MetricAccumulator(2)
    # Out of order, and index 1 seen twice with a different prediction the second time.
    acc.update(probs[[3, 1]], labels[[3, 1]], indices=[3, 1])
    acc.update(probs[[0, 2]], labels[[0, 2]], indices=np.array([0, 2]))
    acc.update(np.array([[0.99, 0.01]]), [1], indices=torch.tensor([1]))
    acc.update(probs[[4]], labels[[4]], indices=[4])
    report = acc.compute()
    assert report.n_samples == 5
    want = metrics.classification_report(labels, probs)
    np.testing.assert_array_equal(report.confusion_matrix, want.confusion_matrix)
    assert report.to_dict() == want.to_dict()


def test_reset_and_empty_batches() -> None:
    acc = metrics.MetricAccumulator(3)
    acc.update(np.zeros((0, 3)), [])  # ignored
    with pytest.raises(ValueError, match="no samples"):
        acc.compute()
    acc.update([[0.2, 0.5, 0.3]], [1])
    assert len(acc) == 1
    acc.reset()
    assert len(acc) == 0
    with pytest.raises(ValueError, match="no samples"):
        acc.compute()


def test_accumulator_errors() -> None:
    acc = metrics.MetricAccumulator()
    acc.update([[0.5, 0.5]], [1], indices=[0])
    with pytest.raises(ValueError, match="indices must be given in every update"):
        acc.update([[0.5, 0.5]], [1])
    with pytest.raises(ValueError, match="groups must be given in every update"):
        acc.update([[0.5, 0.5]], [1], ["g"], indices=[1])
    with pytest.raises(ValueError, match="3 class columns but num_classes=2"):
        acc.update([[0.2, 0.3, 0.5]], [1], indices=[1])
    with pytest.raises(ValueError, match=r"labels\[0\] = 2 is outside \[0, 2\)"):
        acc.update([[0.5, 0.5]], [2], indices=[1])
    with pytest.raises(ValueError, match="different lengths"):
        acc.update([[0.5, 0.5]], [1], indices=[1, 2])
    with pytest.raises(TypeError, match="sets 'labels' itself"):
        acc.compute(labels=["a", "b"])
    with pytest.raises(RuntimeError, match=r"no torch\.distributed process group"):
        acc.compute(distributed=True)
    with pytest.raises(ValueError, match="3 names but num_classes=2"):
        metrics.MetricAccumulator(2, labels=NAMES)
    with pytest.raises(ValueError, match="Did you mean 'logits'"):
        metrics.MetricAccumulator(input="logit")


# --- a real torch.distributed run --------------------------------------------------------

N_DATASET = 11  # odd: DistributedSampler pads one rank with a repeated sample
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.utils.data.distributed import DistributedSampler

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        y, logits, patients = make_data(N_DATASET)
        sampler = DistributedSampler(
            range(N_DATASET), num_replicas=WORLD, rank=rank, shuffle=True, seed=0
        )
        order = list(sampler)  # this rank's share, padded to ceil(11 / 2) = 6
        exact = metrics.MetricAccumulator(labels=NAMES, input="logits")
        naive = metrics.MetricAccumulator(labels=NAMES, input="logits")
        by_patient = metrics.MetricAccumulator(labels=NAMES, input="logits")
        for start in range(0, len(order), 4):
            idx = order[start : start + 4]
            scores, targets = torch.tensor(logits[idx]), torch.tensor(y[idx])
            exact.update(scores, targets, indices=torch.tensor(idx))
            naive.update(scores, targets)
            by_patient.update(scores, targets, [patients[i] for i in idx], indices=idx)
        result = {
            "shard": order,
            "exact": exact.compute().to_dict(),
            "naive_n": naive.compute().n_samples,
            "local_n": exact.compute(distributed=False).n_samples,
            "by_patient": by_patient.compute(how="vote", zero_division=0.0).to_dict(),
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_equals_one_process(tmp_path: Path) -> None:
    mp = pytest.importorskip("torch.multiprocessing")
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    context = mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False,
        start_method="spawn",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("the 2-process run did not finish in 120 s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    shards = [r["shard"] for r in results]
    assert sum(map(len, shards)) == N_DATASET + 1  # the sampler really padded
    assert set(shards[0]) | set(shards[1]) == set(range(N_DATASET))

    y, logits, patients = make_data(N_DATASET)
    single = metrics.classification_report(y, logits, labels=NAMES, input="logits").to_dict()
    single_patient = metrics.classification_report(
        y, logits, labels=NAMES, input="logits", groups=patients, how="vote", zero_division=0.0
    ).to_dict()
    for result in results:
        assert result["exact"] == single  # every rank, same report as one process
        assert result["by_patient"] == single_patient
        assert result["naive_n"] == N_DATASET + 1  # without indices the padding counts
        assert result["local_n"] == len(result["shard"])

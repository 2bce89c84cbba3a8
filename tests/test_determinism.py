"""Training is bitwise reproducible across processes for a fixed seed and thread count.

Each run is a fresh Python process (another ``PYTHONHASHSEED``, other heap addresses), so a
result that depended on anything but the seed, the data and the thread count (set or dict
order of names, memory alignment, the time) would show here as a mismatch. The runs train the
toy resnet10 at depth 4, so the thin-depth fold (depth 2), the centre-tap path (depth 1),
``Conv3d``, BatchNorm, Adam and the loss all take part, forward and backward.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path

    import torch

    sys.path.insert(0, sys.argv[3])
    from tests.helpers.toy import make_trainer

    out, epochs = Path(sys.argv[1]), int(sys.argv[2])
    trainer = make_trainer(out, epochs)
    result = trainer.fit(resume="auto")
    state = trainer.model.state_dict()
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().contiguous().numpy().tobytes())
    print(json.dumps({
        "threads": torch.get_num_threads(),
        "losses": [row.train_loss for row in result.history],
        "val_losses": [row.val_loss for row in result.history],
        "weights": digest.hexdigest(),
    }))
    """
)


def train_in_process(
    script: Path, out: Path, epochs: int, threads: int, hash_seed: int
) -> dict[str, object]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "PYTHONHASHSEED": str(hash_seed),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(epochs), str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    assert run["threads"] == threads
    return run


@pytest.mark.slow
@pytest.mark.timeout(900)  # four training processes, on a busy 2-core machine
@pytest.mark.parametrize("threads", [1, 2])
def test_two_processes_train_bitwise_alike_and_resume_exactly(tmp_path: Path, threads: int) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    first = train_in_process(script, tmp_path / "a", 2, threads, hash_seed=1)
    second = train_in_process(script, tmp_path / "b", 2, threads, hash_seed=2)
    assert first == second  # losses as floats and the weights' digest, bit for bit
    # A run stopped after one epoch and resumed in another process gives the same weights.
    train_in_process(script, tmp_path / "c", 1, threads, hash_seed=3)
    resumed = train_in_process(script, tmp_path / "c", 2, threads, hash_seed=4)
    assert resumed == first

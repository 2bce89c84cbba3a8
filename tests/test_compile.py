"""``torch.compile`` readiness: no graph breaks in ``forward`` for any registered model, and
compiled (with inductor freezing, as the inference fast path uses it) equals eager."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

from resnet3d import create_model, list_models

TINY_WIDTHS = (4, 8, 8, 16)
#: Quick enough for every run; the rest (deeper nets trace longer) are marked slow.
FAST = {"resnet18"}


def _explain(name: str, train: bool) -> object:
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = create_model(name, widths=TINY_WIDTHS).train(train)
    x = torch.randn(2, 3, 4, 16, 16)
    return torch._dynamo.explain(model)(x)


@pytest.mark.parametrize(
    "name",
    [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_models()],
)
def test_forward_has_no_graph_breaks(name: str) -> None:
    explanation = _explain(name, train=False)
    reasons = [str(r.reason) for r in explanation.break_reasons]  # type: ignore[attr-defined]
    assert explanation.graph_break_count == 0, reasons  # type: ignore[attr-defined]
    assert explanation.graph_count == 1  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "resnet18_2plus1d", "resnet50"])
def test_training_forward_has_no_graph_breaks(name: str) -> None:
    # Train mode takes other paths (batch statistics, running-stat updates).
    explanation = _explain(name, train=True)
    assert explanation.graph_break_count == 0  # type: ignore[attr-defined]


@pytest.mark.slow
def test_compiled_with_freezing_equals_eager() -> None:
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = create_model("resnet10", widths=TINY_WIDTHS).eval()
    x = torch.rand(2, 3, 4, 16, 16)
    with torch.no_grad():
        expected = model(x)
        with inductor_config.patch(freezing=True):
            compiled = torch.compile(model)
            out = compiled(x)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)

"""Input handling: tensors, logits vs probabilities, and a clear error for every bad input."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from resnet3d import metrics

torch = pytest.importorskip("torch")

Y = [0, 1, 2, 1, 0, 2]
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.2, 0.6],
        [0.3, 0.4, 0.3],
        [0.5, 0.25, 0.25],
        [0.1, 0.3, 0.6],
    ]
)


# --- what the module imports ------------------------------------------------------------


def test_import_is_numpy_only() -> None:
    code = (
        "import sys, resnet3d.metrics as m; "
        "m.classification_report([0, 1], [[0.9, 0.1], [0.2, 0.8]]); "
        "bad = [k for k in ('torch', 'matplotlib', 'resnet3d.models.resnet', "
        "'resnet3d.models.layers') "
        "if k in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


# --- tensors, lists, arrays give the same numbers ---------------------------------------


def test_tensors_lists_and_arrays_agree() -> None:
    y_t = torch.tensor(Y)
    p_t = torch.tensor(P, dtype=torch.float32, requires_grad=True)  # grads must not matter
    assert metrics.roc_auc(y_t, p_t) == pytest.approx(metrics.roc_auc(Y, P.tolist()), abs=1e-7)
    pred = P.argmax(1)
    assert np.array_equal(
        metrics.confusion_matrix(y_t, torch.tensor(pred)), metrics.confusion_matrix(Y, pred)
    )
    assert metrics.accuracy(y_t.float(), pred) == metrics.accuracy(Y, list(pred))
    report = metrics.classification_report(y_t, p_t.detach().double())
    assert report.accuracy == metrics.accuracy(Y, pred)


def test_half_precision_probabilities_are_accepted() -> None:
    logits = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 3
    for dtype in (torch.float16, torch.bfloat16):
        probs = logits.to(dtype).softmax(-1)  # rows sum to 1 only to within the dtype's eps
        got = metrics.roc_auc(y, probs)
        ref = metrics.roc_auc(
            y.numpy(), probs.double().numpy() / probs.double().sum(-1, keepdim=True).numpy()
        )
        assert got == pytest.approx(ref, abs=1e-12)


def test_logits_declared_explicitly() -> None:
    logits = np.log(P) + 3.0  # softmax(log p + c) = p
    np.testing.assert_allclose(metrics.softmax(logits), P, atol=1e-12)
    assert metrics.roc_auc(Y, logits, input="logits") == pytest.approx(metrics.roc_auc(Y, P))
    with pytest.raises(ValueError, match=r"input='logits'"):
        metrics.roc_auc(Y, logits)  # logits declared as probabilities: caught, with a hint


def test_softmax_is_stable_and_float64() -> None:
    out = metrics.softmax(np.array([[1000.0, 1000.0, -1000.0]], dtype=np.float32))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]])


def test_integral_float_and_bool_labels() -> None:
    assert metrics.accuracy([0.0, 1.0, 1.0], [0, 1, 0]) == pytest.approx(2 / 3)
    assert metrics.accuracy(np.array([True, False]), [1, 0]) == 1.0


# --- bad input: a ValueError that names the problem ---------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.confusion_matrix([], []),
        lambda: metrics.accuracy([], []),
        lambda: metrics.precision_recall_f1([], []),
        lambda: metrics.roc_auc([], np.zeros((0, 3))),
        lambda: metrics.roc_curve([], []),
        lambda: metrics.classification_report([], np.zeros((0, 2))),
        lambda: metrics.aggregate(np.zeros((0, 2)), []),
        lambda: metrics.bootstrap_ci(metrics.accuracy, [], []),
    ],
)
def test_empty_input(call) -> None:
    with pytest.raises(ValueError, match="empty"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.confusion_matrix([0, 1], [0, 1, 1]),
        lambda: metrics.accuracy([0, 1], [0]),
        lambda: metrics.specificity([0, 1, 1], [0, 1]),
        lambda: metrics.roc_auc([0, 1, 2], P),
        lambda: metrics.roc_curve([0, 1, 1], [0.2, 0.3]),
        lambda: metrics.one_vs_rest([0, 1], P, 0),
        lambda: metrics.classification_report(Y[:-1], P),
        lambda: metrics.aggregate(P, ["a"] * 5),
        lambda: metrics.bootstrap_ci(metrics.accuracy, [0, 1], [0]),
    ],
)
def test_mismatched_lengths(call) -> None:
    with pytest.raises(ValueError, match=r"different lengths|ids but"):
        call()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.confusion_matrix([0, 3], [0, 1], num_classes=3), r"y_true\[1\] = 3"),
        (lambda: metrics.confusion_matrix([0, 1], [0, -1]), r"y_pred\[1\] = -1"),
        (lambda: metrics.precision_recall_f1([0, 1], [0, 5], 3), r"y_pred\[1\] = 5 .*\[0, 3\)"),
        (lambda: metrics.roc_auc([0, 1, 3, 1, 0, 2], P), r"y_true\[2\] = 3 is outside \[0, 3\)"),
        (lambda: metrics.classification_report([0, 1, 2, 1, 0, -2], P), r"y_true\[5\]"),
        (lambda: metrics.accuracy([0, 0.5], [0, 1]), r"y_true\[1\] = .*0\.5"),
        (lambda: metrics.accuracy(["NCP", "CP"], [0, 1]), "class indices"),
        (lambda: metrics.roc_curve([0, 2, 1], [0.1, 0.2, 0.3]), "pos_label"),
    ],
)
def test_labels_out_of_range(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores(bad: float) -> None:
    scores = P.copy()
    scores[3, 1] = bad
    for call in (
        lambda: metrics.roc_auc(Y, scores),
        lambda: metrics.roc_auc(Y, scores, input="logits"),
        lambda: metrics.softmax(scores),
        lambda: metrics.one_vs_rest(Y, scores, 0),
        lambda: metrics.aggregate(scores, list("aabbcc")),
        lambda: metrics.classification_report(Y, scores),
        lambda: metrics.MetricAccumulator(3).update(scores, Y),
    ):
        with pytest.raises(ValueError, match=r"non-finite value: \w+\[3, 1\]"):
            call()
    with pytest.raises(ValueError, match=r"non-finite value: y_score\[3\]"):
        metrics.roc_curve([0, 1, 0, 1, 1, 0], scores[:, 1])


def test_rows_that_are_not_probabilities() -> None:
    not_normalised = P.copy()
    not_normalised[2] *= 1.2
    with pytest.raises(ValueError, match=r"row 2 sums to 1\.2"):
        metrics.roc_auc(Y, not_normalised)
    negative = P.copy()
    negative[4] = [1.2, -0.1, -0.1]
    with pytest.raises(ValueError, match=r"y_prob\[4, 0\] = 1\.2 is outside \[0, 1\]"):
        metrics.classification_report(Y, negative)
    with pytest.raises(ValueError, match=r"scores\[4, 0\]"):
        metrics.MetricAccumulator(input="probs").update(negative, Y)
    # Within tolerance (rounded to 4 decimals) is fine; just beyond it is not.
    metrics.roc_auc(Y, P + np.array([3e-5, 0, 0]))
    with pytest.raises(ValueError, match="row 0"):
        metrics.roc_auc(Y, P + np.array([3e-4, 0, 0]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.roc_auc(Y, P, input="logit"), r"Did you mean 'logits'"),
        (lambda: metrics.roc_auc(Y, P, average="macor"), r"Did you mean 'macro'"),
        (lambda: metrics.precision_recall_f1(Y, Y, average="wieghted"), r"'weighted'"),
        (lambda: metrics.confusion_matrix(Y, Y, normalize="rows"), r"normalize='rows'"),
        (lambda: metrics.precision_recall_f1(Y, Y, zero_division=0.5), "zero_division"),
        (lambda: metrics.aggregate(P, list("aabbcc"), how="median"), r"how='median'"),
        (lambda: metrics.one_vs_rest(Y, P, "COVID", labels=["NCP", "CP", "Normal"]), "labels"),
        (lambda: metrics.one_vs_rest(Y, P, "NCp", labels=["NCP", "CP", "Normal"]), "'NCP'"),
        (lambda: metrics.one_vs_rest(Y, P, 3), r"outside \[0, 3\)"),
        (lambda: metrics.one_vs_rest(Y, P, 0, threshold=1.5), "threshold"),
        (lambda: metrics.classification_report(Y, P, labels=["a", "b"]), "2 names"),
        (lambda: metrics.roc_auc(Y, P[:, :1]), "at least 2 class columns"),
        (lambda: metrics.roc_auc(Y, P[None]), "2-D"),
        (lambda: metrics.confusion_matrix(Y, Y, num_classes=1), "num_classes"),
    ],
)
def test_bad_options(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_absent_class_gives_nan_and_warning_not_an_exception() -> None:
    y = [0, 1, 0, 1, 0, 1]  # class 2 never occurs
    with pytest.warns(metrics.UndefinedMetricWarning, match=r"class\(es\) \[2\]"):
        per_class = metrics.roc_auc(y, P, average=None)
    assert np.isnan(per_class[2]) and np.isfinite(per_class[:2]).all()
    with pytest.warns(metrics.UndefinedMetricWarning):
        assert np.isnan(metrics.roc_auc(y, P, average="macro"))
    with pytest.warns(metrics.UndefinedMetricWarning):
        report = metrics.classification_report(y, P, labels=["NCP", "CP", "Normal"])
    assert np.isnan(report.auroc[2]) and report.to_dict()["per_class"]["Normal"]["auroc"] is None


def test_zero_division_warns_only_when_asked() -> None:
    y_true, y_pred = [0, 0, 1], [0, 0, 0]  # class 1 never predicted
    with pytest.warns(metrics.UndefinedMetricWarning, match=r"Precision .* \[1\]"):
        prf = metrics.precision_recall_f1(y_true, y_pred)
    assert prf.precision[1] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.precision_recall_f1(y_true, y_pred, zero_division=1.0).precision[1] == 1.0
        assert np.isnan(
            metrics.precision_recall_f1(y_true, y_pred, zero_division="nan").precision[1]
        )


@pytest.mark.gpu
def test_cuda_tensors() -> None:
    y = torch.tensor(Y, device="cuda")
    logits = torch.tensor(np.log(P), device="cuda", requires_grad=True)
    assert metrics.roc_auc(y, logits, input="logits") == pytest.approx(metrics.roc_auc(Y, P))
    acc = metrics.MetricAccumulator(3, input="logits")
    acc.update(logits.bfloat16(), y, indices=torch.arange(6, device="cuda"))
    assert acc.compute().n_samples == 6

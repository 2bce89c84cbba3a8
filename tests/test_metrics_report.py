"""classification_report: numbers against scikit-learn, serialisation, markdown and plots."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

from resnet3d import metrics

sk = pytest.importorskip("sklearn.metrics")

NAMES = ["NCP", "CP", "Normal"]


def make_data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_numbers_match_sklearn() -> None:
    y, p = make_data()
    report = metrics.classification_report(y, p, labels=NAMES)
    pred = p.argmax(1)
    ref = sk.classification_report(y, pred, labels=[0, 1, 2], output_dict=True)
    for k, name in enumerate(NAMES):
        assert report.precision[k] == pytest.approx(ref[str(k)]["precision"], abs=1e-12)
        assert report.recall[k] == pytest.approx(ref[str(k)]["recall"], abs=1e-12)
        assert report.f1[k] == pytest.approx(ref[str(k)]["f1-score"], abs=1e-12)
        assert report.support[k] == ref[str(k)]["support"]
        assert report.to_dict()["per_class"][name]["support"] == ref[str(k)]["support"]
    for ours, theirs in ((report.macro, ref["macro avg"]), (report.weighted, ref["weighted avg"])):
        assert ours["precision"] == pytest.approx(theirs["precision"], abs=1e-12)
        assert ours["recall"] == pytest.approx(theirs["recall"], abs=1e-12)
        assert ours["f1"] == pytest.approx(theirs["f1-score"], abs=1e-12)
    assert report.accuracy == pytest.approx(ref["accuracy"], abs=1e-12)
    assert report.micro["f1"] == pytest.approx(ref["accuracy"], abs=1e-12)
    assert report.macro["auroc"] == pytest.approx(
        sk.roc_auc_score(y, p, multi_class="ovr"), abs=1e-12
    )
    assert report.weighted["auroc"] == pytest.approx(
        sk.roc_auc_score(y, p, multi_class="ovr", average="weighted"), abs=1e-12
    )
    assert report.micro["auroc"] == pytest.approx(
        sk.roc_auc_score(np.eye(3)[y], p, average="micro"), abs=1e-12
    )
    np.testing.assert_array_equal(report.confusion_matrix, sk.confusion_matrix(y, pred))
    np.testing.assert_allclose(
        report.normalized_confusion_matrix(), sk.confusion_matrix(y, pred, normalize="true")
    )
    assert (report.level, report.n_samples, report.n_inputs) == ("sample", 60, 60)


def test_to_dict_is_plain_json() -> None:
    y, p = make_data()
    y[y == 2] = 0  # class "Normal" absent: NaN AUROC must serialise too
    with pytest.warns(metrics.UndefinedMetricWarning):
        report = metrics.classification_report(y, p, labels=NAMES, ci=True, n_bootstrap=50)
    data = report.to_dict(include_curves=True)
    text = json.dumps(data, allow_nan=False)  # no NaN, no numpy types
    assert json.loads(text) == data

    def walk(value: object) -> None:
        if isinstance(value, dict):
            assert all(type(k) is str for k in value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert value is None or type(value) in (int, float, str, bool), type(value)

    walk(data)
    assert data["per_class"]["Normal"]["auroc"] is None
    assert data["macro"]["auroc"] is None
    assert set(data["intervals"]) == {
        "accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_specificity",
        "macro_auroc",
    }  # fmt: skip
    assert data["class_intervals"]["NCP"]["recall"]["n_resamples"] == 50
    assert len(data["roc_curves"]["CP"]["fpr"]) == len(data["roc_curves"]["CP"]["tpr"])


def test_markdown() -> None:
    y, p = make_data()
    report = metrics.classification_report(y, p, labels=NAMES)
    text = report.to_markdown(digits=3)
    assert str(report) == report.to_markdown()
    assert "| NCP | " in text and "| macro avg |" in text and "| true \\ predicted |" in text
    assert f"Accuracy: {report.accuracy:.3f}" in text
    assert f"{report.f1[1]:.3f}" in text
    rows = [line for line in text.splitlines() if line.startswith("| NCP |")]
    assert rows[-1].endswith(" | ".join(str(v) for v in report.confusion_matrix[0]) + " |")


def test_intervals() -> None:
    y, p = make_data(80)
    a = metrics.classification_report(y, p, ci=True, n_bootstrap=200, seed=1)
    b = metrics.classification_report(y, p, ci=True, n_bootstrap=200, seed=1)
    assert a.intervals is not None and a.class_intervals is not None
    assert a.intervals == b.intervals  # deterministic per seed
    acc = a.intervals["accuracy"]
    assert acc.estimate == a.accuracy and acc.low <= a.accuracy <= acc.high
    assert acc.high - acc.low < 0.5
    # The accuracy interval equals bootstrap_ci with the same seed (same resamples).
    direct = metrics.bootstrap_ci(
        lambda t, s: metrics.accuracy(t, s.argmax(1)), y, p, n=200, seed=1
    )
    assert (direct.low, direct.high) == (acc.low, acc.high)
    assert "[" in a.to_markdown() and "percentile bootstrap" in a.to_markdown()


def test_report_intervals_equal_generic_bootstrap_of_each_metric() -> None:
    # The report evaluates resamples from draw counts (no re-sorting); every interval must
    # equal bootstrap_ci over the public metric functions with the same seed. Coarse,
    # tie-heavy probabilities and a rare class make ties and undefined resamples common.
    y, p = make_data(40, seed=3)
    y[y == 2] = 0
    y[:2] = 2
    p = np.round(p, 1) + 0.05
    p /= p.sum(1, keepdims=True)
    kwargs = {"n": 150, "seed": 7}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = metrics.classification_report(y, p, ci=True, n_bootstrap=150, seed=7)
    assert report.intervals is not None and report.class_intervals is not None

    def per_class(name: str, k: int):
        if name == "auroc":
            return lambda t, s: metrics.roc_auc(t, s, average=None)[k]
        if name == "specificity":
            return lambda t, s: metrics.specificity(t, s.argmax(1), 3, zero_division=np.nan)[k]
        return lambda t, s: getattr(
            metrics.precision_recall_f1(t, s.argmax(1), 3, zero_division=np.nan), name
        )[k]

    checks = {
        report.intervals["macro_f1"]: lambda t, s: (
            metrics.precision_recall_f1(t, s.argmax(1), 3, average="macro").f1
        ),
        report.intervals["macro_auroc"]: lambda t, s: metrics.roc_auc(t, s),
        report.intervals["accuracy"]: lambda t, s: metrics.accuracy(t, s.argmax(1)),
    }
    for k in range(3):
        for name in ("precision", "recall", "f1", "specificity", "auroc"):
            checks[report.class_intervals[str(k)][name]] = per_class(name, k)
    for ours, metric in checks.items():
        ref = metrics.bootstrap_ci(metric, y, p, **kwargs)
        assert ours.n_skipped == ref.n_skipped
        np.testing.assert_allclose([ours.low, ours.high], [ref.low, ref.high], atol=1e-12)
    assert report.class_intervals["2"]["auroc"].n_skipped > 0  # the rare class was missed
    assert metrics.classification_report(y, p).intervals is None


def test_group_level_report_equals_aggregate_then_report() -> None:
    y, p = make_data(60)
    order = np.argsort(y, kind="stable")
    y, p = y[order], p[order]
    scans = [f"scan{i // 3}" for i in range(60)]  # consecutive triples share a class here
    y_scan = y.copy()
    for i in range(0, 60, 3):
        y_scan[i : i + 3] = y[i]
    report = metrics.classification_report(y_scan, p, groups=scans, how="vote")
    pooled = metrics.aggregate(p, scans, "vote", labels=y_scan)
    direct = metrics.classification_report(pooled.labels, pooled.probs)
    assert (report.level, report.n_samples, report.n_inputs) == ("group", 20, 60)
    np.testing.assert_array_equal(report.confusion_matrix, direct.confusion_matrix)
    assert report.accuracy == direct.accuracy and report.macro == direct.macro
    assert "pooled from 60 inputs" in report.to_markdown()


def test_ci_groups() -> None:
    y, p = make_data(60)
    patients = np.repeat(np.arange(12), 5)
    y = np.repeat(y[:12], 5)
    ok = metrics.classification_report(y, p, ci=True, n_bootstrap=50, ci_groups=patients)
    assert ok.intervals is not None
    scans = patients  # one scan per patient here
    with pytest.raises(ValueError, match="ci_groups must be constant within each group"):
        metrics.classification_report(
            y, p, groups=scans, ci=True, n_bootstrap=10, ci_groups=np.arange(60)
        )
    with pytest.raises(ValueError, match="ci_groups has 3 ids"):
        metrics.classification_report(y, p, ci=True, n_bootstrap=10, ci_groups=[1, 2, 3])


def test_undefined_precision_is_reported_not_raised() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]])
    with pytest.warns(metrics.UndefinedMetricWarning, match="Precision"):
        report = metrics.classification_report(y, p)
    assert report.precision[1] == 0.0  # class 1 never predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nan_report = metrics.classification_report(y, p, zero_division=np.nan)
    assert np.isnan(nan_report.precision[1])
    assert "n/a" in nan_report.to_markdown()


def _assert_png(path) -> None:
    from PIL import Image

    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_plots_write_valid_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    # Other tests (MONAI, colormap checks) may have imported pyplot already; the check that
    # the plots never import it is only meaningful when it was not loaded before.
    pyplot_before = "matplotlib.pyplot" in sys.modules
    y, p = make_data()
    report = metrics.classification_report(y, p, labels=NAMES)
    cm_path = report.plot_confusion_matrix(tmp_path / "figs" / "cm.png")
    roc_path = report.plot_roc(tmp_path / "roc.png")
    counts_path = report.plot_confusion_matrix(tmp_path / "counts", normalize=None)
    for path in (cm_path, roc_path, counts_path):
        _assert_png(path)
    if not pyplot_before:  # drawn on an Agg canvas, no pyplot state
        assert "matplotlib.pyplot" not in sys.modules


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch) -> None:
    y, p = make_data()
    report = metrics.classification_report(y, p)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match="not installed: pip install matplotlib"):
        report.plot_roc(tmp_path / "roc.png")
    with pytest.raises(ImportError, match="not installed: pip install matplotlib"):
        metrics.require_matplotlib()

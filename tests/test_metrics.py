"""Metrics: hand-computed cases, agreement with scikit-learn, absent classes, report text and PNGs."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss, recall_score, roc_auc_score

from emonet.evaluation.metrics import ablation_table, classification_report, format_report, uar
from emonet.evaluation.plots import plot_confusion_matrix, plot_training_curves
from emonet.experiment.rundir import RunDir
from emonet.evaluation.report import ablation_rows, format_evaluation
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError


def one_hot(pred, k=7):
    proba = np.zeros((len(pred), k))
    proba[np.arange(len(pred)), pred] = 1.0
    return proba


def test_uar_differs_from_accuracy_on_imbalanced_data():
    y = np.array([0] * 9 + [1])
    report = classification_report(y, one_hot(np.zeros(10, int)))
    assert report["n"] == 10
    assert report["accuracy"] == pytest.approx(0.9)
    assert report["uar"] == pytest.approx(0.5)
    angry, disgust = report["per_class"]["Angry"], report["per_class"]["Disgust"]
    assert angry == pytest.approx({"precision": 0.9, "recall": 1.0, "f1": 1.8 / 1.9, "support": 9})
    assert disgust == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}  # never predicted
    assert report["macro_f1"] == pytest.approx(0.9 / 1.9)
    assert report["absent_classes"] == ["Fear", "Happy", "Neutral", "Sad", "Surprise"]
    assert report["auc_ovo"] == pytest.approx(0.5)  # one constant score for everyone: chance ranking


def test_perfect_predictions_score_one_everywhere():
    y = np.repeat(np.arange(7), 3)
    report = classification_report(y, one_hot(y))
    for key in ("accuracy", "uar", "macro_f1", "auc_ovo"):
        assert report[key] == pytest.approx(1.0), key
    assert report["log_loss"] == pytest.approx(0.0, abs=1e-12)
    assert report["absent_classes"] == []
    assert np.array_equal(report["confusion_matrix"], 3 * np.eye(7, dtype=int))
    assert all(row == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3} for row in report["per_class"].values())


def test_confusion_matrix_rows_are_true_columns_are_predicted():
    y = np.array([0, 0, 6])
    report = classification_report(y, one_hot(np.array([3, 0, 0])))
    matrix = np.array(report["confusion_matrix"])
    assert matrix[0, 3] == 1 and matrix[0, 0] == 1 and matrix[6, 0] == 1 and matrix.sum() == 3
    assert report["per_class"]["Happy"] == {"precision": 0.0, "recall": None, "f1": None, "support": 0}
    assert report["per_class"]["Angry"]["precision"] == pytest.approx(0.5)


def test_ties_go_to_the_lowest_class_id():
    report = classification_report(np.array([2]), np.full((1, 7), 1 / 7))
    assert np.array(report["confusion_matrix"])[2, 0] == 1


@pytest.mark.parametrize("seed,drop", [(0, ()), (1, (2, 5)), (2, (0, 1, 3, 6))])
def test_agrees_with_scikit_learn(seed, drop):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, 300)
    for cls in drop:
        y[y == cls] = 4
    logits = rng.normal(size=(300, 7)) + 1.5 * np.eye(7)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    report = classification_report(y, proba)
    pred = proba.argmax(axis=1)
    present = np.unique(y)
    renorm = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
    assert report["auc_ovo"] == pytest.approx(
        roc_auc_score(y, renorm, multi_class="ovo", average="macro", labels=present), abs=1e-12)
    assert report["uar"] == pytest.approx(recall_score(y, pred, labels=present, average="macro"), abs=1e-12)
    assert report["macro_f1"] == pytest.approx(
        f1_score(y, pred, labels=present, average="macro", zero_division=0), abs=1e-12)
    assert report["log_loss"] == pytest.approx(log_loss(y, proba, labels=range(7)), abs=1e-12)
    assert report["accuracy"] == pytest.approx(np.mean(pred == y))
    assert report["absent_classes"] == [CLASSES[c] for c in drop]
    assert 0.5 < report["auc_ovo"] < 1.0
    assert json.loads(json.dumps(report)) == report


def test_auc_with_two_present_classes_is_the_binary_auc():
    rng = np.random.default_rng(3)
    y = np.where(rng.random(80) < 0.4, 1, 5)
    proba = rng.dirichlet(np.ones(7), 80)
    renorm = proba[:, 5] / (proba[:, 1] + proba[:, 5])
    report = classification_report(y, proba)
    assert report["auc_ovo"] == pytest.approx(roc_auc_score(y == 5, renorm), abs=1e-12)


def test_auc_is_none_with_one_present_class():
    report = classification_report(np.array([3, 3]), one_hot(np.array([3, 1])))
    assert report["auc_ovo"] is None and report["uar"] == pytest.approx(0.5) and report["macro_f1"] == pytest.approx(2 / 3)


def test_custom_class_list():
    report = classification_report([0, 1, 2, 2], one_hot(np.array([0, 1, 2, 0]), k=3), classes=("a", "b", "c"))
    assert report["classes"] == ["a", "b", "c"] and report["uar"] == pytest.approx((1 + 1 + 0.5) / 3)


@pytest.mark.parametrize("y,proba,match", [
    (np.zeros((2, 1), int), np.full((2, 7), 1 / 7), r"y_true must be a non-empty 1-D array.*\(2, 1\)"),
    (np.array([], int), np.zeros((0, 7)), r"y_true must be a non-empty 1-D array"),
    (np.array([0.0, 1.0]), np.full((2, 7), 1 / 7), r"y_true must hold integer class ids; received dtype float64"),
    (np.array([0, 7]), np.full((2, 7), 1 / 7), r"y_true ids must be in \[0, 6\]; received min 0, max 7"),
    (np.array([0, -1]), np.full((2, 7), 1 / 7), r"received min -1"),
    (np.array([0, 1]), np.full((2, 6), 1 / 6), r"proba must have shape \(n, 7\) = \(2, 7\).*received shape \(2, 6\)"),
    (np.array([0, 1]), np.full((3, 7), 1 / 7), r"received shape \(3, 7\)"),
    (np.array([0, 1]), np.full((2, 7), 0.2), r"proba rows must sum to 1 \(within 0.001\); row 0 sums to 1.4"),
    (np.array([0, 1]), np.array([[np.nan] + [1 / 6] * 6] * 2), r"proba must be finite; received 2 NaN/inf"),
    (np.array([0, 1]), np.array([[-0.5, 1.5] + [0] * 5] * 2), r"proba must be non-negative; received min -0.5"),
    (np.array([0, 1]), np.array([["a"] * 7] * 2), r"proba must be a real-valued array"),
])
def test_bad_inputs_are_refused(y, proba, match):
    with pytest.raises(ConfigError, match=match):
        classification_report(y, proba)


@pytest.mark.parametrize("classes,match", [
    ("Angry", r"classes must be a sequence of class names"),
    (("Angry",), r"classes must be >= 2 distinct"),
    (("Angry", "Angry"), r"classes must be >= 2 distinct"),
])
def test_bad_class_lists_are_refused(classes, match):
    with pytest.raises(ConfigError, match=match):
        classification_report([0, 1], np.eye(2), classes=classes)


def test_format_report_reads_like_a_summary():
    y = np.array([0] * 9 + [1])
    text = format_report(classification_report(y, one_hot(np.zeros(10, int))), title="always Angry")
    lines = text.splitlines()
    assert lines[0] == "always Angry: UAR 50.0%  accuracy 90.0%  macro-F1 47.4%  AUC 0.50  (n=10)"
    assert "chance 50.0% over 2 classes" in lines[1]
    assert all(name in text for name in CLASSES)
    assert "absent from the true labels (excluded from UAR, macro-F1, AUC): Fear, Happy" in text
    disgust_row = next(line for line in lines if line.startswith("Disgust") and "%" in line)
    assert disgust_row.split() == ["Disgust", "-", "0.0%", "0.0%", "1"]
    matrix_header = lines.index("confusion matrix (rows = true class, columns = predicted class)") + 1
    assert lines[matrix_header].split()[-7:] == list(CLASSES)
    assert lines[matrix_header + 1].split() == ["Angry", "9", "0", "0", "0", "0", "0", "0"]
    assert format_report(classification_report([3, 3], one_hot(np.array([3, 3]))))[:4] == "UAR "
    assert "AUC n/a" in format_report(classification_report([3, 3], one_hot(np.array([3, 3]))))


def test_format_report_refuses_other_dicts():
    with pytest.raises(ConfigError, match=r"report is missing keys \['n', 'accuracy'"):
        format_report({"uar": 0.5})


def test_confusion_matrix_png(tmp_path):
    y = np.repeat(np.arange(7), [5, 1, 2, 9, 7, 0, 3])
    rng = np.random.default_rng(0)
    report = classification_report(y, rng.dirichlet(np.ones(7), y.size))
    path = plot_confusion_matrix(report["confusion_matrix"], tmp_path / "out" / "cm.png", title="random")
    assert path == tmp_path / "out" / "cm.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in path.parent.iterdir()] == ["cm.png"]  # no temporary file left behind


@pytest.mark.parametrize("matrix,name,match", [
    (np.zeros((6, 6)), "cm.png", r"matrix must have shape \(7, 7\) to match 7 classes; received shape \(6, 6\)"),
    (-np.ones((7, 7)), "cm.png", r"matrix must hold finite non-negative counts"),
    (np.zeros((7, 7)), "cm.jpg", r"path must end in .png; received '.*cm.jpg'"),
])
def test_confusion_matrix_png_refuses_bad_input(tmp_path, matrix, name, match):
    with pytest.raises(ConfigError, match=match):
        plot_confusion_matrix(matrix, tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_ablation_table_keeps_the_given_order():
    rows = [{"name": "fusion", "accuracy": 0.452, "uar": 0.431, "macro_f1": 0.41, "n": 175, "auc_ovo": 0.78},
            {"name": "audio | only", "accuracy": 0.3, "uar": 0.25, "macro_f1": 0.2, "n": 175}]
    lines = ablation_table(rows).splitlines()
    assert lines[0] == "| model | n | accuracy | UAR | macro-F1 | AUC |"
    assert lines[2] == "| fusion | 175 | 45.2% | 43.1% | 41.0% | 0.780 |"
    assert lines[3] == "| audio \\| only | 175 | 30.0% | 25.0% | 20.0% | - |"
    assert len(lines) == 4


@pytest.mark.parametrize("rows,match", [
    ([], r"rows must hold at least one dict"),
    ({"name": "x"}, r"rows must be a list of dicts; received dict"),
    ([{"name": "x", "accuracy": 0.5, "uar": 0.5, "n": 3}], r"rows\[0\] is missing keys \['macro_f1'\]"),
    ([{"name": "x", "accuracy": 50, "uar": 0.5, "macro_f1": 0.5, "n": 3}],
     r"rows\[0\]\['accuracy'\] must be a fraction in \[0, 1\]; received 50"),
    (["x"], r"rows\[0\] must be a dict; received str"),
])
def test_ablation_table_refuses_bad_rows(rows, match):
    with pytest.raises(ConfigError, match=match):
        ablation_table(rows)


def test_importing_metrics_pulls_neither_matplotlib_nor_tensorflow():
    code = ("import sys, emonet.evaluation.metrics, emonet.evaluation.baselines, emonet.evaluation.report; "
            "print(sorted(m for m in ('matplotlib', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- uar

def test_uar_ignores_unlabelled_rows_and_classes_outside_the_range():
    y_true = np.array([0, 0, 1, -1, -1, 3])
    y_pred = np.array([0, 1, 1, 0, 5, 3])
    assert uar(y_true, y_pred) == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert uar(y_true, y_pred, n_classes=2) == pytest.approx(0.75)  # id 3 is not a label among 2 classes
    assert uar(np.array([-1, -1]), np.array([0, 1])) == 0.0
    assert uar([], []) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_uar_is_the_mean_recall_over_present_classes(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(-1, 5, 200)  # -1: unlabelled; classes 5 and 6 absent
    y_pred = rng.integers(0, 7, 200)
    expected = np.mean([np.mean(y_pred[y_true == c] == c) for c in range(7) if np.any(y_true == c)])
    assert uar(y_true, y_pred) == expected
    labelled = y_true >= 0
    report = classification_report(y_true[labelled], one_hot(y_pred[labelled]))
    assert report["uar"] == expected


# ----------------------------------------------------------------------------- loose probabilities

def test_float32_rows_and_rows_slightly_off_one_are_scored_without_warnings():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, 50)
    logits = rng.normal(size=(50, 7)).astype(np.float32)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # float32: rows off 1 by ~1e-7
    proba[0] = 0.0
    proba[0, y[0]] = 1.0 + 5e-4  # within SUM_TOLERANCE
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = classification_report(y, proba)
    p64 = proba.astype(np.float64)
    expected = -np.mean(np.log(np.clip(p64[np.arange(50), y], np.finfo(np.float64).eps, 1.0)))
    assert report["log_loss"] == pytest.approx(expected, abs=1e-12)
    assert report["log_loss"] > 0


# ----------------------------------------------------------------------------- evaluation summary

def evaluation_result():
    """A result shaped like evaluate_run's (fusion run with two ablations and one baseline)."""
    y = np.array([0] * 9 + [1])
    report = classification_report(y, one_hot(np.zeros(10, int)))
    summary = {key: report[key] for key in ("accuracy", "uar", "macro_f1", "auc_ovo", "n")}
    video = dict(summary, uar=0.25)
    baseline = {"name": "k-NN (audio functionals)", "model": "k-NN", "feature_set": "audio functionals",
                **summary, "n_train": 40, "proba_source": "predict_proba", "fit_seconds": 0.01, "notes": []}
    return {"run": "runs/toy-seed1", "store": "data/toy.h5", "split": "val", "mode": "fusion", "n": 10,
            **summary, "report": report, "ablation": {"fusion": summary, "audio": summary, "video": video},
            "baselines": [baseline], "evaluated": "2024-01-01T00:00:00+0000"}


def test_ablation_rows_name_the_run_its_ablations_then_the_baselines():
    rows = ablation_rows(evaluation_result())
    assert [row["name"] for row in rows] == ["EmoNet fusion (this run)", "EmoNet audio", "EmoNet video",
                                             "k-NN (audio functionals)"]
    assert rows[2]["uar"] == 0.25 and "report" not in rows[3]


def test_format_evaluation_is_report_table_and_closing_line():
    result = evaluation_result()
    text = format_evaluation(result, metrics_path=Path("runs/toy-seed1") / "metrics.json")
    expected = (format_report(result["report"], title="toy-seed1: fusion model on val split of data/toy.h5")
                + "\n\n" + ablation_table(ablation_rows(result))
                + "\n\nUAR 50.0%  accuracy 90.0%  (n=10) -> runs/toy-seed1/metrics.json")
    assert text == expected
    lines = text.splitlines()
    assert lines[0] == "toy-seed1: fusion model on val split of data/toy.h5: UAR 50.0%  accuracy 90.0%  macro-F1 47.4%  " \
                       "AUC 0.50  (n=10)"
    assert "| EmoNet fusion (this run) | 10 | 90.0% | 50.0% | 47.4% | 0.500 |" in lines
    assert "| EmoNet video | 10 | 90.0% | 25.0% | 47.4% | 0.500 |" in lines
    # the same text from metrics.json read back
    assert format_evaluation(json.loads(json.dumps(result)), metrics_path="runs/toy-seed1/metrics.json") == text


def test_format_evaluation_refuses_other_dicts():
    with pytest.raises(ConfigError, match=r"result is missing keys \['run', 'store'"):
        format_evaluation({"uar": 0.5}, metrics_path="metrics.json")


# ----------------------------------------------------------------------------- training curves

def test_training_curves_png(tmp_path):
    for stage, losses in (("frames", [2.0, 1.5, 1.2]), ("fusion", [1.0, 0.8])):
        folder = tmp_path / "run" / "stages" / stage
        folder.mkdir(parents=True)
        rows = ["epoch,lr,loss,accuracy,val_uar,seconds"]
        rows += [f"{i + 1},0.001,{loss},0.5,{0.2 + 0.1 * i},1.0" for i, loss in enumerate(losses)]
        (folder / "log.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    path = plot_training_curves(RunDir(tmp_path / "run").stage_logs(), out / "training_curves.png")
    assert path == out / "training_curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.iterdir()] == ["training_curves.png"]  # no temporary file left behind
    assert plot_training_curves(RunDir(tmp_path / "empty").stage_logs(), out / "none.png") is None and not (out / "none.png").exists()


def test_calibration_error_is_zero_when_a_model_is_as_sure_as_it_is_right_and_grows_with_overconfidence():
    from emonet.evaluation.metrics import expected_calibration_error
    # 10 clips at top probability 0.7, 7 of them right: exactly calibrated
    proba = np.tile([0.7, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0], (10, 1))
    y = np.array([0] * 7 + [1] * 3)
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)
    # the same hits said with 0.95: off by 0.25
    sure = np.tile([0.95, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0], (10, 1))
    assert expected_calibration_error(y, sure) == pytest.approx(0.25)
    report = classification_report(y, sure)
    assert report["mean_confidence"] == pytest.approx(0.95) and report["calibration_error"] == pytest.approx(0.25)
    assert "mean top probability 95.0% (calibration error 0.250)" in format_report(report)

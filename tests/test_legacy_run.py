"""A run folder written before the emonet/ redesign still loads, predicts the same and evaluates.

tests/data/legacy_run holds `make demo`'s run as the code of commit e1c61bf wrote it, and the
predictions that code made for the six bundled CREMA-D clips (tests/data/NOTICE).
"""

import json
import shutil

import pytest
import yaml

from conftest import CREMA_D, TESTS
from emonet.cli import main

LEGACY = TESTS / "data" / "legacy_run"
RUN = LEGACY / "demo_crema_d-seed0"

pytestmark = pytest.mark.slow


def test_legacy_run_predicts_as_before(tmp_path, capsys):
    before = {r["clip"]: r for r in json.loads((LEGACY / "predictions_before_redesign.json").read_text())}
    out = tmp_path / "predictions.json"
    clips = sorted(str(p) for p in CREMA_D.glob("*.flv"))
    assert main(["predict", *clips, "--model", str(RUN), "--format", "json", "-o", str(out), "--no-progress"]) == 0
    after = json.loads(out.read_text())
    assert len(after) == len(before) == 6
    for row in after:
        old = before[row["clip"].split("/")[-1]]
        assert row["emotion"] == old["emotion"]
        assert row["has_audio"] == old["has_audio"] and row["face_rate"] == pytest.approx(old["face_rate"])
        for emotion, p in old["probabilities"].items():  # the CLI's JSON now has one field per class
            assert row[emotion] == pytest.approx(p, abs=1e-3)  # face tracking (issue 11) moves the crops slightly


def test_legacy_run_evaluates(tmp_path, capsys):
    """Scored on the clips it was trained on: the legacy metrics.json figures come back."""
    run = shutil.copytree(RUN, tmp_path / RUN.name)  # evaluation extracts its store into the run folder
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["store"].endswith("crema_d_features.h5")  # a path of the machine that trained it:
    config["data"]["store"] = str(tmp_path / "elsewhere" / "crema_d_features.h5")  # make sure it is absent here
    config["data"]["root"] = str(tmp_path / "elsewhere" / "crema_d")
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--data", str(CREMA_D), "--layout", "crema_d", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    legacy = json.loads((RUN / "metrics.json").read_text())
    assert metrics["n"] == legacy["n"] == 6
    assert metrics["uar"] == pytest.approx(legacy["uar"]) and metrics["accuracy"] == pytest.approx(legacy["accuracy"])
    assert (out / "predictions.csv").is_file() and (out / "result_record.json").is_file()
    printed = capsys.readouterr()
    assert "UAR" in printed.out
    # its training store is not on this machine: the baselines are skipped with a message, not a crash
    assert "baselines skipped" in printed.err

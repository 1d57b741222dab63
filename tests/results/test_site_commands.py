"""calibrate, check and predict --site end to end on a tiny export (synthetic data): the site
file, the refusals (training films, one class, what the loader refuses, a single-model check),
and that the export's own threshold.json is never written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def site_run(exported_run: Path, synthetic_root: Path, tmp_path_factory) -> Path:
    """A copy of the shared exported run (so site files do not leak into it), with the
    training data's content record (data_files.json) that the overlap refusal reads."""
    from data_pipeline.content import content_digests

    run = tmp_path_factory.mktemp("site") / "run"
    shutil.copytree(exported_run, run)
    (run / "data_files.json").write_text(json.dumps(
        {"data": str(synthetic_root), "files": content_digests(synthetic_root)}))
    return run


def _site(root: Path, seed: int, normal: int = 12, pneumonia: int = 20) -> Path:
    from data_pipeline.synthetic import generate_synthetic

    return generate_synthetic(root, seed=seed, n_normal_patients=normal,
                              n_pneumonia_patients=pneumonia, images_per_patient=(1, 4),
                              image_size=32, layout="flat")


def test_calibrate_writes_the_site_file_and_predict_uses_it(site_run: Path, tmp_path: Path,
                                                             capsys):
    from run_search import main

    export = site_run / "exports" / "cnn" / "rank1"
    before = (export / "threshold.json").read_bytes()
    site = _site(tmp_path / "north", seed=101)
    code = main(["calibrate", "--model", str(export), "--data", str(site), "--quiet",
                 "--min-sensitivity", "0.6", "--name", "north"])
    out = capsys.readouterr().out
    assert code == 0, out
    record = json.loads((export / "site_thresholds" / "north.json").read_text())
    assert (export / "threshold.json").read_bytes() == before
    for key in ("threshold", "n", "n_positive", "n_negative", "counts", "date",
                "content_digest", "at_threshold", "exported", "rule"):
        assert record[key] is not None, key
    point = record["at_threshold"]
    assert point["sensitivity_lower_bound"] >= 0.6
    assert record["counts"]["tp"] + record["counts"]["fn"] == record["n_positive"]
    assert "specificity" in out and "north.json" in out

    image = next((site / "PNEUMONIA").glob("*.jpeg"))
    code = main(["predict", "--model", str(export), "--site", "north", str(image)])
    out = capsys.readouterr().out
    assert code == 0 and f"at threshold {record['threshold']:.4f}" in out

    assert main(["predict", "--model", str(export), "--site", "south", str(image)]) == 2
    err = capsys.readouterr().err
    assert "no site threshold" in err and "north" in err
    assert main(["predict", "--model", str(export), "--site", "north", "--threshold", "0.5",
                 str(image)]) == 2


def test_calibrate_too_few_pneumonia_films_writes_nothing(site_run: Path, tmp_path: Path,
                                                          capsys):
    from run_search import main

    export = site_run / "exports" / "ann" / "rank1"
    site = _site(tmp_path / "tiny", seed=102, normal=6, pneumonia=4)
    code = main(["calibrate", "--model", str(export), "--data", str(site), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1 and "TOO FEW" in out and "more pneumonia" in out
    assert "the exported threshold" in out
    assert not (export / "site_thresholds" / "tiny.json").exists()


def test_calibrate_refusals(site_run: Path, synthetic_root: Path, tmp_path: Path, capsys):
    from run_search import main

    export = str(site_run / "exports" / "cnn" / "rank1")
    # films the export was trained on (byte-identical, renamed)
    mixed = _site(tmp_path / "mixed", seed=103)
    train_file = next((synthetic_root / "train" / "PNEUMONIA").glob("*.jpeg"))
    shutil.copy(train_file, mixed / "PNEUMONIA" / "renamed.jpeg")
    assert main(["calibrate", "--model", export, "--data", str(mixed), "--quiet"]) == 2
    assert "byte-identical to films the export was trained on" in capsys.readouterr().err
    # one class only
    one = tmp_path / "one"
    shutil.copytree(_site(tmp_path / "src", seed=104) / "PNEUMONIA", one / "PNEUMONIA")
    assert main(["calibrate", "--model", export, "--data", str(one), "--quiet"]) == 2
    assert "class" in capsys.readouterr().err
    # what the loader refuses: no such folder
    assert main(["calibrate", "--model", export, "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a bad site name
    assert main(["calibrate", "--model", export, "--data", str(mixed), "--name", "../x"]) == 2
    assert "site name" in capsys.readouterr().err
    assert not (site_run / "exports" / "cnn" / "rank1" / "site_thresholds" / "mixed.json").exists()


def test_check_records_a_verdict_and_caches_the_reference(site_run: Path, tmp_path: Path,
                                                          capsys):
    from run_search import main

    export = site_run / "exports" / "cnn" / "rank1"
    site = _site(tmp_path / "east", seed=105)
    code = main(["check", "--model", str(export), "--data", str(site), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    record = json.loads((export / "site_checks" / "east.json").read_text())
    assert record["n"] > 20 and 0 < record["p_value"] <= 1
    assert set(record["probes"]) == {"border", "photometric", "geometric"}
    assert record["verdict"] in out and (export / "site_reference.npz").is_file()


def test_check_refuses_a_single_model_and_training_films(site_run: Path, synthetic_root: Path,
                                                         capsys):
    from run_search import main

    from results.errors import ResultsError
    from results.model_io import load_export
    from results.site.reference import fold_members

    single = site_run / "exports" / "cnn" / "rank1_single"
    assert single.is_dir()
    with pytest.raises(ResultsError, match="retrained single model"):
        fold_members(load_export(single).model, single)
    assert len(fold_members(load_export(site_run / "exports" / "cnn" / "rank1").model)) == 2
    export = site_run / "exports" / "cnn" / "rank1"
    assert main(["check", "--model", str(export), "--data", str(synthetic_root / "train"),
                 "--quiet"]) == 2
    assert "byte-identical" in capsys.readouterr().err


def test_compare_report_shows_the_site_section(site_run: Path, tmp_path: Path):
    """Runs after the calibrate and check tests above, which left their records in site_run."""
    from results.report.compare import compare_models

    export = site_run / "exports" / "cnn" / "rank1"
    if not (export / "site_thresholds" / "north.json").is_file():
        pytest.skip("needs test_calibrate_writes_the_site_file_and_predict_uses_it first")
    compare_models(site_run, out_dir=tmp_path / "report", n_boot=20, progress=False)
    html = (tmp_path / "report" / "report.html").read_text()
    md = (tmp_path / "report" / "report.md").read_text()
    assert "At your site" in html and "north" in md and "east" in md
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["models"]["cnn"]["site"]["thresholds"][0]["site"] == "north"


def test_check_without_the_training_data_names_train_data(site_run: Path, synthetic_root: Path,
                                                          tmp_path: Path, capsys):
    from run_search import main

    run = tmp_path / "moved" / "run"
    shutil.copytree(site_run, run)
    (run / "exports" / "ann" / "rank1" / "site_reference.npz").unlink(missing_ok=True)
    config = json.loads((run / "run.json").read_text())
    config["config"]["data"] = str(tmp_path / "gone")
    (run / "run.json").write_text(json.dumps(config))
    site = _site(tmp_path / "west", seed=106)
    export = str(run / "exports" / "ann" / "rank1")
    assert main(["check", "--model", export, "--data", str(site), "--quiet"]) == 2
    assert "--train-data" in capsys.readouterr().err
    assert main(["check", "--model", export, "--data", str(site), "--quiet",
                 "--train-data", str(synthetic_root)]) == 0
    assert (run / "exports" / "ann" / "rank1" / "site_reference.npz").is_file()

"""predict: files and folders, a bad file reported on its own line, CSV output, refusals."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from results.errors import ResultsError
from results.model_io import check_compatible
from results.predict import predict_paths


def test_predict_folder_and_bad_file(exported_run: Path, synthetic_root: Path, tmp_path: Path,
                                     capsys):
    images = sorted((synthetic_root / "train" / "PNEUMONIA").glob("*.jpeg"))[:3]
    bad = tmp_path / "broken.jpeg"
    bad.write_bytes(b"not an image at all")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.jpeg").write_bytes(images[0].read_bytes())
    (folder / "notes.txt").write_text("ignored")
    out = tmp_path / "pred.csv"
    rows = predict_paths(exported_run / "exports" / "cnn" / "rank1",
                         [images[1], bad, folder, images[2]], out=out)
    assert [Path(r["path"]).name for r in rows] == [images[1].name, "broken.jpeg", "a.jpeg",
                                                      images[2].name]
    assert rows[1]["error"] and rows[1]["probability"] is None
    for r in (rows[0], rows[2], rows[3]):
        assert r["error"] == "" and 0.0 <= r["probability"] <= 1.0
        assert r["label"] == ("PNEUMONIA" if r["probability"] >= r["threshold"] else "NORMAL")
    saved = list(csv.DictReader(open(out)))
    assert len(saved) == 4 and saved[1]["error"].startswith("not an image Pillow can read")

    from results.predict import print_summary

    print_summary(rows)
    lines = capsys.readouterr().out.splitlines()
    assert any("broken.jpeg" in line and "ERROR" in line for line in lines)


def test_predict_cli(exported_run: Path, synthetic_root: Path, capsys):
    from run_search import main

    image = next((synthetic_root / "train" / "NORMAL").glob("*.jpeg"))
    code = main(["predict", "--model", str(exported_run / "exports" / "ann" / "rank1"),
                 str(image), str(image.parent / "missing.jpeg")])
    out = capsys.readouterr().out
    # the readable file is predicted, the missing one reported, and the exit code says so
    assert code == 1 and image.name in out and "missing.jpeg" in out and "no such file" in out
    code = main(["predict", "--model", str(exported_run / "exports" / "ann" / "rank1"),
                 str(image)])
    assert code == 0


def test_predict_family_folder_points_to_its_exports(exported_run: Path, synthetic_root: Path):
    from results.errors import ResultsError
    from results.predict import predict_paths

    image = next((synthetic_root / "train" / "NORMAL").glob("*.jpeg"))
    with pytest.raises(ResultsError, match="family folder.*rank1"):
        predict_paths(exported_run / "exports" / "ann", [image])


def test_predict_no_images(exported_run: Path, tmp_path: Path):
    with pytest.raises(ResultsError, match="no image files"):
        predict_paths(exported_run / "exports" / "cnn" / "rank1", [tmp_path])


def test_not_an_export(tmp_path: Path):
    with pytest.raises(ResultsError, match="not a finished export"):
        predict_paths(tmp_path, [tmp_path / "x.jpeg"])


def test_mismatch_names_both_values():
    meta = {"class_names": ["NORMAL", "PNEUMONIA"], "image_size": 64, "color_mode": "grayscale"}
    with pytest.raises(ResultsError) as err:
        check_compatible(meta, class_names=["NORMAL", "PNEUMONIA"], image_size=32,
                         color_mode="rgb", source="DATA", export="EXPORT")
    msg = str(err.value)
    assert "32" in msg and "64" in msg and "'rgb'" in msg and "'grayscale'" in msg


def test_predictions_csv_is_written_atomically(tmp_path, monkeypatch):
    """A write that fails part-way (here: the second row) leaves the previous file whole."""
    import results.predict as predict

    out = tmp_path / "preds.csv"
    out.write_text("previous predictions\n")
    real = predict.csv_value
    calls = {"n": 0}

    def failing(value):
        calls["n"] += 1
        if calls["n"] > len(predict.CSV_COLUMNS):  # in the second row
            raise OSError(28, "No space left on device")
        return real(value)

    monkeypatch.setattr(predict, "csv_value", failing)
    rows = [{"path": f"a{i}.png", "probability": 0.5, "label": "NORMAL", "threshold": 0.5,
             "error": ""} for i in range(2)]
    with pytest.raises(OSError):
        predict.write_csv(rows, out)
    assert out.read_text() == "previous predictions\n"
    assert [p.name for p in tmp_path.iterdir()] == ["preds.csv"]  # no temporary file left
    monkeypatch.setattr(predict, "csv_value", real)
    predict.write_csv(rows, out)
    assert out.read_text().splitlines()[0].startswith("path,")


def test_a_missing_export_folder_is_said_not_to_exist(tmp_path: Path):
    with pytest.raises(ResultsError, match="does not exist.*<cnn\\|ann\\|transfer>/rank1"):
        predict_paths(tmp_path / "MISSING", [tmp_path / "x.jpeg"])


def test_predict_on_nothing_predictable_is_bad_input(exported_run: Path, tmp_path: Path, capsys):
    """One non-image file: nothing predicted -> exit 2 with the reason (a mix stays exit 1)."""
    from run_search import main

    bad = tmp_path / "notes.jpeg"
    bad.write_text("not an image")
    code = main(["predict", "--model", str(exported_run / "exports" / "ann" / "rank1"),
                 str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "none of the 1 file(s) could be predicted" in err and "notes.jpeg" in err


def test_a_threshold_that_calls_every_film_one_class_is_warned():
    from results.predict import threshold_warning

    rows = [{"path": "a.png", "probability": 0.2, "label": "PNEUMONIA", "threshold": 0.0,
             "error": ""}]
    assert "every film is called the positive class" in threshold_warning(rows)
    assert threshold_warning([{**rows[0], "threshold": 0.4}]) is None

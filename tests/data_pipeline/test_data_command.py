"""The `data` subcommand through run_search.main: JSON summary and every bad input (exit 2)."""

from __future__ import annotations

import json

import pytest
from dp_helpers import make_tree, write_image

import run_search


@pytest.fixture
def main(monkeypatch):
    """run_search.main with only this package's subcommands, so these tests do not depend on the
    other packages' command modules."""
    monkeypatch.setattr(run_search, "COMMAND_MODULES", ("data_pipeline.commands",))
    return run_search.main


def test_data_json(main, synthetic_root, cache_dir, capsys):
    rc = main(["data", "--data", str(synthetic_root), "--folds", "3", "--image-size", "16",
               "--cache-dir", str(cache_dir), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    s = json.loads(out)  # one JSON object, nothing else on stdout
    total = s["images"]["total"]
    assert total == sum(s["images"]["by_class"].values()) == sum(s["images"]["by_split"]["train"].values())
    assert s["class_names"] == ["NORMAL", "PNEUMONIA"] and s["positive_class"] == "PNEUMONIA"
    assert set(s["patients"]) == {"NORMAL", "PNEUMONIA"}
    assert len(s["duplicate_sets"]) == 1 and s["skipped"] == []
    t = s["test_split"]
    assert t["source"] == "carved" and t["patient_overlap"] == 0
    assert sum(t["train"].values()) + sum(t["test"].values()) == total
    assert len(s["folds"]) == 3
    for f in s["folds"]:
        assert f["patient_overlap"] == 0
        assert sum(f["train"].values()) + sum(f["val"].values()) == sum(t["train"].values())
    assert sum(sum(f["val"].values()) for f in s["folds"]) == sum(t["train"].values())
    assert s["synthetic"] is False and "synthetic" not in err.lower()


def test_data_text_and_default_synthetic(main, capsys):
    rc = main(["data", "--folds", "2", "--image-size", "16"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "SYNTHETIC" in err and "synthetic" in out
    assert "fold 1:" in out and "patient overlap 0" in out and "test split: carved" in out


def expect_error(main, capsys, argv, *fragments):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    for frag in fragments:
        assert frag in err, err
    assert "Fix:" in err


def test_missing_folder(main, tmp_path, capsys):
    expect_error(main, capsys, ["data", "--data", str(tmp_path / "nope")], str(tmp_path / "nope"),
                 "does not exist")


def test_not_a_folder(main, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    expect_error(main, capsys, ["data", "--data", str(f)], "is a file")


def test_no_class_folders(main, tmp_path, capsys):
    (tmp_path / "train").mkdir()
    expect_error(main, capsys, ["data", "--data", str(tmp_path)], "no class folders")


def test_one_class_only(main, tmp_path, capsys):
    make_tree(tmp_path, {"train/NORMAL": 3})
    expect_error(main, capsys, ["data", "--data", str(tmp_path)], "only one class folder", "'NORMAL'")


def test_empty_class(main, tmp_path, capsys):
    make_tree(tmp_path, {"train/NORMAL": 3})
    (tmp_path / "train/PNEUMONIA").mkdir()
    (tmp_path / "train/PNEUMONIA/readme.txt").write_text("no images here")
    expect_error(main, capsys, ["data", "--data", str(tmp_path)], "PNEUMONIA", "has no images")


def test_no_images(main, tmp_path, capsys):
    for c in ("NORMAL", "PNEUMONIA"):
        (tmp_path / "train" / c).mkdir(parents=True)
        (tmp_path / "train" / c / "list.csv").write_text("a,b")
    expect_error(main, capsys, ["data", "--data", str(tmp_path)], "no images in")


def test_fewer_patients_than_folds(main, tmp_path, capsys, monkeypatch):
    from data_pipeline import dataset

    make_tree(tmp_path, {"train/NORMAL": 3, "train/PNEUMONIA": 8})
    monkeypatch.setattr(dataset, "decode_files", lambda *a, **k: pytest.fail("decoded before checks"))
    expect_error(main, capsys, ["data", "--data", str(tmp_path), "--folds", "5"],
                 "'NORMAL' has 3 patient", "--folds 5")


@pytest.mark.parametrize("size", ["4", "2048", "0"])
def test_image_size_out_of_range(main, synthetic_root, capsys, size):
    expect_error(main, capsys, ["data", "--data", str(synthetic_root), "--image-size", size],
                 f"--image-size {size}", "8 to 1024")


def test_bad_test_fraction_and_positive_class(main, synthetic_root, capsys):
    expect_error(main, capsys, ["data", "--data", str(synthetic_root), "--test-fraction", "0"],
                 "--test-fraction 0.0")
    expect_error(main, capsys, ["data", "--data", str(synthetic_root), "--positive-class", "COVID"],
                 "'COVID'", "NORMAL, PNEUMONIA")


def test_strict_refuses_unreadable(main, tmp_path, cache_dir, capsys):
    make_tree(tmp_path, {"train/NORMAL": 3, "train/PNEUMONIA": 3})
    (tmp_path / "train/NORMAL/IM-0077-0001.jpeg").write_bytes(b"\xff\xd8 broken")
    expect_error(main, capsys, ["data", "--data", str(tmp_path), "--folds", "2", "--strict",
                                "--cache-dir", str(cache_dir)], "IM-0077-0001.jpeg", "--strict")
    write_image(tmp_path / "train/NORMAL/IM-0078-0001.png", size=8)
    rc = main(["data", "--data", str(tmp_path), "--folds", "2", "--json", "--cache-dir",
               str(cache_dir)])
    assert rc == 0
    captured = capsys.readouterr()
    # One "warning:" line on stderr, no Python source line (warnings.warn printed one).
    assert "warning: skipped 1 unreadable image file(s)" in captured.err
    assert "IM-0077-0001.jpeg" in captured.err and ".py:" not in captured.err
    s = json.loads(captured.out)
    assert [d["path"] for d in s["skipped"]] == ["train/NORMAL/IM-0077-0001.jpeg"]


def test_data_shows_images_dropped_from_train(main, tmp_path, cache_dir, capsys):
    from test_folds_splits import _leaky_tree

    root = _leaky_tree(tmp_path / "d")
    rc = main(["data", "--data", str(root), "--folds", "2", "--image-size", "16",
               "--cache-dir", str(cache_dir)])
    captured = capsys.readouterr()
    out = captured.out
    assert "warning: 2 train/ image(s)" in captured.err and ".py:" not in captured.err
    assert rc == 0 and "dropped from train: 2 image(s)" in out
    assert "patients shared with train: 0" in out

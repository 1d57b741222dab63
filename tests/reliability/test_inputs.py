"""Reliability battery, inputs: bad data folders, bad options and bad space files.

Every case runs ``run_search.py`` in a subprocess as a user would (see
``reliability_helpers.py``) and asserts the exit code, a one-paragraph message naming the path or
value and the fix, no traceback, and that nothing was started: a refusal happens before any
training, so the run folder is not even created. These cases pass today; they are here so they
stay fixed.

Corrupt images are skipped with a warning naming each file and the search goes on; ``--strict``
(an option of ``data``: ``search`` has none) refuses them, naming each file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from reliability_helpers import assert_user_error, run_cli, search_args

# A file that is no image at all, and a JPEG cut short (the first 300 bytes of a real one).
NOT_AN_IMAGE = "train/NORMAL/IM-0099-0001.jpeg"
TRUNCATED = "train/PNEUMONIA/person999_bacteria_1.jpeg"


def _copy_data(synthetic_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the session's synthetic data (the fixture is read-only)."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "chest_xray"))


def _with_corrupt_images(synthetic_root: Path, tmp_path: Path) -> Path:
    data = _copy_data(synthetic_root, tmp_path)
    (data / NOT_AN_IMAGE).write_bytes(b"this is not a jpeg")
    real = next(iter(sorted((data / "train" / "PNEUMONIA").glob("*.jpeg"))))
    (data / TRUNCATED).write_bytes(real.read_bytes()[:300])
    return data


# --- data folders ----------------------------------------------------------------------------

def test_missing_data_folder_is_refused(tmp_path, synthetic_root):
    missing = tmp_path / "no_such_chest_xray"
    result = run_cli(search_args(tmp_path, missing))
    assert_user_error(result, str(missing), "no such folder", "leave --data out")
    assert not (tmp_path / "run").exists()


def test_data_folder_with_one_class_is_refused(tmp_path, synthetic_root):
    data = _copy_data(synthetic_root, tmp_path)
    shutil.rmtree(data / "train" / "PNEUMONIA")
    result = run_cli(search_args(tmp_path, data))
    assert_user_error(result, "only one class", "'NORMAL'", str(data / "train"),
                      "add the other class folder")
    assert not (tmp_path / "run").exists()


def test_data_folder_that_is_a_file_is_refused_by_data(tmp_path):
    """``data`` (how a user checks a folder; no backend import: fast)."""
    a_file = tmp_path / "chest_xray.zip"
    a_file.write_bytes(b"PK not unpacked")
    result = run_cli(["data", "--data", str(a_file)])
    assert_user_error(result, repr(str(a_file)), "is a file, not a folder",
                      "path of the unpacked chest_xray folder")


def test_empty_class_folder_is_refused_by_data(tmp_path, synthetic_root):
    data = _copy_data(synthetic_root, tmp_path)
    for image in (data / "train" / "NORMAL").iterdir():
        image.unlink()
    result = run_cli(["data", "--data", str(data)])
    assert_user_error(result, repr(str(data / "train" / "NORMAL")), "has no images",
                      "add its images or remove the folder")


def test_data_folder_one_level_too_high_names_the_right_path(tmp_path, synthetic_root):
    outer = tmp_path / "archive"
    outer.mkdir()
    shutil.copytree(synthetic_root, outer / "chest_xray")
    result = run_cli(["data", "--data", str(outer)])
    assert_user_error(result, str(outer / "chest_xray"), "--data")


def test_corrupt_images_are_skipped_with_a_warning_and_the_search_goes_on(tmp_path,
                                                                         synthetic_root):
    data = _with_corrupt_images(synthetic_root, tmp_path)
    result = run_cli(search_args(tmp_path, data, "--max-trials", "1"))
    out = result.stderr + result.stdout
    assert result.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    run_dir = tmp_path / "run"
    # --quiet: the warning is in search.log (the terminal stays silent), as one line.
    log = (run_dir / "search.log").read_text()
    assert "warning: skipped 2 unreadable image file(s)" in log
    assert NOT_AN_IMAGE in log and TRUNCATED in log
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    cvs = [json.loads(p.read_text()) for p in sorted((run_dir / "ann").glob("trial_*/cv.json"))]
    assert len(cvs) == 1 and all(c["status"] == "COMPLETED" for c in cvs)
    # the skipped files are in neither the search nor the recorded test split
    split = (run_dir / "split.json").read_text()
    assert NOT_AN_IMAGE not in split and TRUNCATED not in split


def test_corrupt_images_are_refused_with_strict(tmp_path, synthetic_root):
    data = _with_corrupt_images(synthetic_root, tmp_path)
    result = run_cli(["data", "--data", str(data), "--image-size", "16", "--strict"])
    assert_user_error(result, "2 unreadable image file(s)", NOT_AN_IMAGE, TRUNCATED,
                      "delete or replace those files", "drop --strict")


# --- options ---------------------------------------------------------------------------------

# (extra arguments, strings the message must hold: the value and a word of the rule or the fix)
BAD_OPTIONS = [
    pytest.param(["--max-trials", "0"], ["--max-trials", "at least 1", "got 0"],
                 id="max-trials-zero"),
    pytest.param(["--max-trials", "-3"], ["--max-trials", "at least 1", "got -3"],
                 id="max-trials-negative"),
    pytest.param(["--tuner", "grid"], ["--tuner", "'grid'", "hyperband", "bayesian", "random"],
                 id="tuner-unknown"),
    pytest.param(["--objective", "val_f1"],
                 ["--objective", "'val_f1'", "Valid objectives", "val_auc", "val_loss"],
                 id="objective-unknown"),
    pytest.param(["--image-size", "4"], ["--image-size", "between 8 and 1024", "got 4"],
                 id="image-size-too-small"),
    pytest.param(["--folds", "0"], ["--folds", "from 1", "got 0"], id="folds-zero"),
]


@pytest.mark.parametrize("extra, names", BAD_OPTIONS)
def test_bad_option_is_refused_before_training(tmp_path, synthetic_root, extra, names):
    result = run_cli(search_args(tmp_path, synthetic_root, *extra))
    assert_user_error(result, *names)
    assert not (tmp_path / "run").exists()


def test_run_dir_that_is_a_file_is_refused(tmp_path, synthetic_root):
    run_file = tmp_path / "notes.txt"
    run_file.write_text("my notes, not a run folder\n")
    result = run_cli(search_args(tmp_path, synthetic_root, run_dir=run_file))
    assert_user_error(result, f"--run-dir {run_file}", "is a file", "Choose another --run-dir")
    assert run_file.read_text() == "my notes, not a run folder\n"  # left alone


# --- space files ------------------------------------------------------------------------------

# (file name, its content or None for a missing file, strings the message must hold)
BAD_SPACES = [
    # `space` and `search` word it differently; each test adds its own words (MISSING_SPACE)
    pytest.param("missing.toml", None, [], id="missing-file"),
    pytest.param("broken.toml", "[ann\ndense_layers = 2\n",
                 ["is not valid TOML", "line 1", "fix the syntax"], id="invalid-toml"),
    pytest.param("unknown.toml", "[ann]\nwidth = 3\n",
                 ["[ann] 'width' is not a dimension", "valid names:", "dense_units"],
                 id="unknown-dimension"),
    pytest.param("range.toml", "[cnn]\nconv_blocks = {min = 1, max = 50}\n",
                 ["[cnn] conv_blocks.max", "50 is outside the allowed bounds [1, 8]",
                  "choose a value within them"], id="out-of-range-bound"),
    pytest.param("fixed.toml", "[ann]\ndense_layers = 99\n",
                 ["[ann] dense_layers", "99 is outside the allowed bounds",
                  "choose a value within them"], id="out-of-range-value"),
]


MISSING_SPACE = {"space": ["does not exist", "pass an existing TOML file"],
                 "search": ["no such file", "leave --space out"]}


def _write_space(tmp_path: Path, name: str, content: str | None) -> Path:
    space = tmp_path / name
    if content is not None:
        space.write_text(content)
    return space


@pytest.mark.parametrize("name, content, names", BAD_SPACES)
def test_bad_space_file_is_refused_by_space(tmp_path, name, content, names):
    """``space --space FILE`` (how a user checks a space file; no backend import: fast)."""
    space = _write_space(tmp_path, name, content)
    result = run_cli(["space", "--model", "cnn", "--space", str(space)])
    extra = MISSING_SPACE["space"] if content is None else []
    assert_user_error(result, str(space), *names, *extra)


# A search pays for the backend import before it refuses (~5 s), so two cases: the missing file
# (checked with the options) and an unknown dimension (checked when the space is loaded).
SEARCH_SPACES = [p for p in BAD_SPACES if p.id in ("missing-file", "unknown-dimension")]


@pytest.mark.parametrize("name, content, names", SEARCH_SPACES)
def test_bad_space_file_is_refused_by_search_before_training(tmp_path, synthetic_root, name,
                                                             content, names):
    space = _write_space(tmp_path, name, content)
    args = search_args(tmp_path, synthetic_root, "--space", str(space))  # overrides the tiny one
    result = run_cli(args)
    extra = MISSING_SPACE["search"] if content is None else []
    assert_user_error(result, str(space), *names, *extra)
    assert not (tmp_path / "run").exists()

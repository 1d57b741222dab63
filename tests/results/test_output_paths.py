"""Output paths are checked before the work: every kind of bad --out, and the good ones."""

from __future__ import annotations

from pathlib import Path

import pytest

import results.output_paths as output_paths
from results.errors import ResultsError
from results.output_paths import check_output_dir, check_output_file


def test_good_paths_pass_and_nothing_is_created(tmp_path: Path) -> None:
    assert check_output_file(tmp_path / "new" / "deeper" / "p.csv") == \
        tmp_path / "new" / "deeper" / "p.csv"
    (tmp_path / "old.csv").write_text("x")
    check_output_file(tmp_path / "old.csv")  # overwriting a file is fine
    check_output_dir(tmp_path / "report")
    check_output_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]


def test_a_folder_where_a_file_is_expected(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="is a folder, but a file is expected.*file name"):
        check_output_file(tmp_path)


@pytest.mark.parametrize("depth", [1, 2])
def test_a_file_in_the_way(tmp_path: Path, depth: int) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    target = blocker / "sub" / "out.csv" if depth == 2 else blocker / "out.csv"
    with pytest.raises(ResultsError, match=f"{blocker} is a file"):
        check_output_file(target)
    with pytest.raises(ResultsError, match="is a file, but a folder is expected"):
        check_output_dir(blocker)
    with pytest.raises(ResultsError, match=f"{blocker} is a file"):
        check_output_dir(blocker / "report")


def test_no_permission(tmp_path: Path, monkeypatch) -> None:
    # Simulated: root (which runs the tests here) bypasses chmod.
    monkeypatch.setattr(output_paths.os, "access", lambda path, mode: False)
    with pytest.raises(ResultsError, match=f"no permission to write in the folder {tmp_path}"):
        check_output_file(tmp_path / "sub" / "p.csv")
    with pytest.raises(ResultsError, match="no permission.*chmod u\\+w"):
        check_output_dir(tmp_path)
    (tmp_path / "ro.csv").write_text("x")
    with pytest.raises(ResultsError, match="read-only"):
        check_output_file(tmp_path / "ro.csv")

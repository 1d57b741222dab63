"""The shipped space's narrowed ranges are the ones benchmarks/RESULTS.md ("Priors") measured.

The table "dimension | family | now | default | before | why" in that section is the record of
which ranges the sweep narrowed; this test fails when the shipped TOML and that record part, so a
range widened back (or narrowed further) without a new measurement does not go unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import keras_tuner as kt
import pytest

from spaces import ANNHyperModel, CNNHyperModel
from spaces.space import load_space

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
HEADER = ["dimension", "family", "now", "default", "before", "why"]


def _cells(line: str) -> list[str]:
    return [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]


def priors_rows() -> list[dict[str, str]]:
    """The rows of the narrowed-ranges table in RESULTS.md's "Priors" section."""
    text = RESULTS.read_text(encoding="utf-8")
    assert "\n## Priors" in text, "benchmarks/RESULTS.md has no '## Priors' section"
    section = text.split("\n## Priors", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if _cells(line)[:len(HEADER)] == HEADER)
    rows = []
    for line in lines[start + 2:]:  # past the header and its --- line
        if not line.strip().startswith("|"):
            break
        rows.append(dict(zip(HEADER, _cells(line))))
    return rows


def _number(text: str) -> float:
    return float(text.split()[0])


def _expected(row: dict[str, str]) -> tuple[object, object]:
    """``(range or choices, default)`` as the table's "now" and "default" cells state them."""
    now = row["now"]
    if ".." in now:
        lo, hi = now.split("(")[0].split("..")
        return (_number(lo), _number(hi)), _number(row["default"])
    return tuple(v.strip() for v in now.split(",")), row["default"]


def test_results_md_records_the_learning_rate_prior():
    names = {r["dimension"] for r in priors_rows()}
    assert "learning_rate" in names


@pytest.mark.parametrize("row", priors_rows(), ids=lambda r: r["dimension"])
def test_shipped_space_has_the_measured_ranges(row):
    space = load_space(None)
    families = [f.strip() for f in row["family"].split(",")]
    expected, default = _expected(row)
    for family in families:
        dim = space.dims(family)[row["dimension"]]
        if dim.type in ("int", "float"):
            assert (dim.min, dim.max) == pytest.approx(expected), (family, row)
            assert dim.default == pytest.approx(default), (family, row)
        else:
            assert tuple(str(v) for v in dim.values) == expected, (family, row)
            assert str(dim.default) == default, (family, row)


def test_defaults_still_build_the_notes_basic_models():
    """Narrowing kept the defaults: the first trial is still the notes' basic model."""
    cnn = CNNHyperModel((16, 16, 1)).build(kt.HyperParameters())
    convs = [layer for layer in cnn.layers if layer.name.endswith("_conv1")]
    assert [layer.filters for layer in convs] == [32, 32]
    assert [layer.units for layer in cnn.layers if layer.name.startswith("dense")
            and not layer.name.endswith(("_act", "_dropout"))] == [128]
    assert cnn.optimizer.__class__.__name__ == "Adam"
    assert float(cnn.optimizer.learning_rate) == pytest.approx(1e-3)
    ann = ANNHyperModel((16, 16, 1)).build(kt.HyperParameters())
    assert [layer.units for layer in ann.layers if layer.name.startswith("dense")
            and not layer.name.endswith(("_act", "_dropout", "_bn"))] == [128, 128]

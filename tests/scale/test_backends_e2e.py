"""The whole flow under every Keras backend, and exports moving between backends.

search -> leaderboard -> export -> compare -> predict, each a ``run_search.py`` subprocess with
``KERAS_BACKEND`` set: tensorflow (the default install), jax (CI installs its CPU wheels from
requirements-jax.txt) and torch (optional: several GB; tested when importable by this Python or
by ``.venv-torch/bin/python``, else skipped with the reason). A model exported under TensorFlow
must predict under JAX and torch, or the refusal must say why.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scale_helpers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

TINY_SPACE = scale_helpers.TINY_SPACE + """[cnn]
conv_blocks = 1
conv_filters = {min = 8, max = 16}
convs_per_block = 1
head = "global_average"
dense_layers = 0
"""


def _python_for(backend: str) -> str | None:
    """A Python that can run ``backend`` (torch may live in a separate .venv-torch)."""
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    if importlib.util.find_spec(module) is not None:
        return sys.executable
    alt = ROOT / ".venv-torch" / "bin" / "python"
    if backend == "torch" and alt.exists():
        return str(alt)
    return None


def _cli(backend: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    py = _python_for(backend)
    if py is None:
        pytest.skip(f"KERAS_BACKEND={backend}: {backend} is not installed here (optional; see "
                    "README 'Backends'); install it to run this test")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([py, "run_search.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{backend}: run_search.py {' '.join(args)} -> "
                                  f"{proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}")
    return proc


def _images(data: Path, n: int = 3) -> list[str]:
    return [str(p) for p in sorted(data.rglob("*.jp*g"))[:n]]


def _flow(backend: str, data: Path, run: Path, space: Path) -> Path:
    _cli(backend, "search", "--data", str(data), "--model", "both", "--tuner", "random",
         "--folds", "2", "--max-trials", "2", "--max-epochs", "1", "--image-size", "16",
         "--space", str(space), "--run-dir", str(run), "--quiet")
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["status"] == "completed"
    assert run_json["versions"]["backend"] == backend
    _cli(backend, "leaderboard", "--run-dir", str(run), "--no-plots")
    boards = list(run.rglob("leaderboard*.csv"))
    assert boards, "no leaderboard CSV written"
    with open(boards[0]) as fh:
        assert len(list(csv.DictReader(fh))) >= 1
    _cli(backend, "export", "--run-dir", str(run))
    for fam in ("cnn", "ann"):
        meta = json.loads((run / "exports" / fam / "rank1" / "metadata.json").read_text())
        assert meta.get("backend") == backend or \
            meta.get("versions", {}).get("backend") == backend, meta
    _cli(backend, "compare", "--run-dir", str(run), "--n-boot", "50")
    out = run / f"pred_{backend}.csv"
    _cli(backend, "predict", "--model", str(run / "exports" / "cnn" / "rank1"),
         *_images(data), "--out", str(out))
    with open(out) as fh:
        assert len(list(csv.DictReader(fh))) == 3
    return run


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(scope="module")
def tf_run(synthetic_root: Path, space: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flow under TensorFlow (the default backend); its exports feed the cross tests."""
    return _flow("tensorflow", synthetic_root, tmp_path_factory.mktemp("tf") / "run", space)


def test_flow_under_tensorflow(tf_run: Path) -> None:
    assert (tf_run / "exports" / "cnn" / "rank1" / "model.keras").exists()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_flow_under_other_backends(backend: str, synthetic_root: Path, space: Path,
                                   tmp_path: Path) -> None:
    _flow(backend, synthetic_root, tmp_path / "run", space)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_tensorflow_export_predicts_under_other_backend(backend: str, tf_run: Path,
                                                        synthetic_root: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "pred.csv"
    images = _images(synthetic_root)
    for fam in ("cnn", "ann"):
        _cli(backend, "predict", "--model", str(tf_run / "exports" / fam / "rank1"), *images,
             "--out", str(out))
        with open(out) as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 3
    # Same model, same images: the probabilities agree across backends.
    ref = tmp_path / "ref.csv"
    _cli("tensorflow", "predict", "--model", str(tf_run / "exports" / "ann" / "rank1"), *images,
         "--out", str(ref))
    with open(ref) as fh_a, open(out) as fh_b:
        a, b = list(csv.DictReader(fh_a)), list(csv.DictReader(fh_b))
    prob = next(k for k in a[0] if "prob" in k.lower())
    for ra, rb in zip(a, b):
        assert abs(float(ra[prob]) - float(rb[prob])) < 1e-4

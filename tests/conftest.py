"""Shared test set-up: threads, seeds, and tiny synthetic data.

Environment (set before any TensorFlow/Keras import): one thread per math library, quiet
TensorFlow logging, and ``CXR_CACHE_DIR`` pointed at a session temporary folder so no test writes
into the repository's ``.cache`` (the built-in synthetic data, when a test asks for it, is
generated there too).

Fixtures (names are stable; other packages' tests use them):

* ``synthetic_root`` (session): a generated Kaggle-layout folder ``train/NORMAL``,
  ``train/PNEUMONIA`` of 32x32 grayscale JPEGs, 10 NORMAL and 20 PNEUMONIA patients with 1-4 films
  each (about 75 images, one byte-identical duplicate), enough patients for a carved test split
  plus 3 folds. Treat it as read-only.
* ``synthetic_dataset`` (session): ``load_dataset(synthetic_root, image_size=32)`` with a
  session cache folder.
* ``cache_dir`` (function): an empty temporary folder for ``load_dataset(cache_dir=...)``.
* ``seed_everything`` (autouse): seeds ``random`` and NumPy before every test, and Keras when it
  is already imported (the test imported it), with ``TEST_SEED``.

Marker: ``slow`` (registered in pytest.ini) for real-data and long tests; tests needing
``../shared/data/chest_xray`` skip with a reason when it is absent (see ``REAL_DATA``).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS", "XLA_FLAGS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "chest_xray"
TEST_SEED = 1234

_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="cxr-test-cache-"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CXR_CACHE_DIR"] = str(_SESSION_CACHE)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def seed_everything() -> int:
    """Seeds random, NumPy and (when already imported) Keras before each test."""
    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(TEST_SEED)
    return TEST_SEED


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated Kaggle-layout data folder (see the module docstring)."""
    from data_pipeline.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "chest_xray", seed=7,
                              n_normal_patients=10, n_pneumonia_patients=20,
                              images_per_patient=(1, 4), image_size=32)


@pytest.fixture(scope="session")
def synthetic_dataset(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """``synthetic_root`` loaded at 32 px grayscale."""
    from data_pipeline import load_dataset

    return load_dataset(synthetic_root, image_size=32, progress=False,
                        cache_dir=tmp_path_factory.mktemp("synthetic-cache"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty folder for the decode cache."""
    path = tmp_path / "cache"
    path.mkdir()
    return path

"""Mixed precision, XLA and two-replica data parallelism, exercised on CPU.

Each case runs ``devices_main.py`` in a fresh process: TensorFlow's logical CPU devices and
JAX's forced host device count must be set before the backend initialises.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.errors import SearchError
from search.runtime import devices

ROOT = Path(__file__).resolve().parents[2]


def _assert_probes_match(out: dict) -> None:
    """The probes score each of the 33 images once, with the model's own output for it
    (under MirroredStrategy ``predict_on_batch`` returned each batch once per replica)."""
    assert out["probe_rows"] == [33, 33]
    assert out["probe_max_diff"] < 1e-3
    # Identical scores give the identical AUC. Under bfloat16 the scores of two batchings may
    # differ by up to 1e-3, enough to swap a near-tie: with 33 images one swapped pair moves
    # the AUC by about 0.004 (seen under JAX on 2 host devices), so a few pairs are allowed.
    tol = 1e-9 if out["probe_max_diff"] == 0 else 0.02
    assert abs(out["probe_clean_auc"] - out["reference_auc"]) < tol
    assert out["probe_border_auc"] == out["probe_clean_auc"]  # the same images


def _run(backend: str, *args: str, env: dict[str, str] | None = None) -> dict:
    full = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    proc = subprocess.run([sys.executable, "tests/scale/devices_main.py", *args], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_tensorflow_two_replicas_mirrored_bfloat16() -> None:
    out = _run("tensorflow", "--replicas", "2", "--mixed", "bfloat16")
    assert (out["replicas"], out["kind"]) == (2, "MirroredStrategy")
    assert out["policy"] == "mixed_bfloat16" and out["hidden_compute_dtype"] == "bfloat16"
    assert out["output_dtype"] == "float32" and out["pred_dtype"] == "float32"
    # 33 images trimmed to 32 (an odd last batch would leave one replica empty), batch_size 8
    # per replica x 2 replicas -> 2 steps; the recorded hyperparameter stays 8.
    assert out["steps"] == 2 and out["recorded_batch"] == 8
    assert any("global batch = batch_size x 2" in ln for ln in out["lines"])
    assert out["evaluated_loss"] > 0
    assert "backend tensorflow" in out["lines"][0]
    _assert_probes_match(out)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed (./test.sh installs TensorFlow only; CI adds "
                           "requirements-jax.txt)")
def test_jax_two_host_devices_data_parallel_bfloat16() -> None:
    out = _run("jax", "--replicas", "2", "--mixed", "bfloat16",
               env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert (out["replicas"], out["kind"]) == (2, "DataParallel")
    assert out["output_dtype"] == "float32" and out["hidden_compute_dtype"] == "bfloat16"
    # Trimmed to 32 images so every batch divides over the 2 devices: 2 global batches of 16.
    assert out["steps"] == 2 and out["recorded_batch"] == 8
    assert "DataParallel over 2" in out["lines"][0]
    assert out["evaluated_loss"] > 0
    _assert_probes_match(out)


def test_single_device_jit_off_float32_ann() -> None:
    out = _run("tensorflow", "--family", "ann", "--jit", "off")  # one device: no trimming
    assert (out["replicas"], out["policy"], out["jit"]) == (1, "float32", "False")
    assert out["steps"] == 5  # 33 images / batch 8
    _assert_probes_match(out)


def test_option_validation() -> None:
    with pytest.raises(SearchError):
        devices.jit_compile_value("maybe")
    assert devices.jit_compile_value("on") is True
    assert devices.setup_data_parallel("off").replicas == 1
    import keras

    before = keras.config.dtype_policy().name
    try:
        with pytest.raises(SearchError):
            devices.set_mixed_precision("float8")
        assert devices.set_mixed_precision("bfloat16") == "mixed_bfloat16"
        assert devices.set_mixed_precision("off") == "float32"
    finally:
        keras.config.set_dtype_policy(before)
    with pytest.raises(SearchError, match="more devices"):
        devices.setup_data_parallel(64, use_cpu=True)

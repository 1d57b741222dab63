"""search.fit.memory: a fold fit leaves nothing behind in the backend that outlives its model."""

from __future__ import annotations

import gc
import os

import keras
import keras_tuner as kt
import numpy as np
import pytest

from search.fit.memory import (FitMemoryGuard, build_optimizer, fit_scope, frozen_heap, rss_mb,
                               trim_c_heap)
from spaces import ANNHyperModel

TF_ONLY = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="the leaks fixed here are TensorFlow's")


def _fit(model) -> None:
    x = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 1), dtype=np.uint8)
    y = np.array([0, 1] * 16)
    model.fit(x.astype("float32"), y, batch_size=16, epochs=1, verbose=0)


def _fit_once(guarded: bool) -> None:
    """One fold-like fit of a tiny model: as search.fit.fold_fit runs it, or bare."""
    hm = ANNHyperModel((8, 8, 1))
    if guarded:
        with fit_scope():
            model = hm.build(kt.HyperParameters())
            build_optimizer(model)
            _fit(model)
            del model
        return
    keras.backend.clear_session()
    model = hm.build(kt.HyperParameters())
    _fit(model)
    del model
    keras.backend.clear_session()
    gc.collect()


def _backend_state() -> tuple[int, int]:
    """(functions in TF's eager context, entries in TF's gradient registry)."""
    from tensorflow.python.eager import context
    from tensorflow.python.framework import ops

    return len(context.context().list_function_names()), len(ops._gradient_registry._registry)


@TF_ONLY
def test_guarded_fits_leave_no_functions_or_gradient_registrations():
    _fit_once(guarded=True)  # warm-up: op wrappers TF registers once per process
    before = _backend_state()
    for _ in range(3):
        _fit_once(guarded=True)
    assert _backend_state() == before


@TF_ONLY
def test_unguarded_fits_do_leak_so_the_guard_test_can_fail():
    # The baseline the guard fixes: without it, every fit adds to both (TF 2.16-2.21).
    _fit_once(guarded=False)
    before = _backend_state()
    _fit_once(guarded=False)
    after = _backend_state()
    assert after[0] > before[0] and after[1] > before[1], (
        "this TensorFlow no longer leaks per fit: search/fit/memory.py's fixes may be unneeded; "
        "re-measure with benchmarks/memory_growth.py --without-memory-guard and update this test")


def test_build_optimizer_creates_the_slots_before_fit():
    keras.backend.clear_session()
    model = ANNHyperModel((8, 8, 1)).build(kt.HyperParameters())
    assert not model.optimizer.built
    build_optimizer(model)
    assert model.optimizer.built and len(model.optimizer.variables) > 1
    build_optimizer(model)  # idempotent


def test_frozen_heap_freezes_only_inside_the_block():
    gc.unfreeze()
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_frozen_heap_leaves_a_callers_freeze_alone():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_clear_session_keeps_the_dtype_policy():
    # Keras' own clear_session() resets it to float32: --mixed-precision would last one fold.
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        with fit_scope():
            assert keras.layers.Dense(2).dtype_policy.name == "mixed_bfloat16"
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_rss_matches_the_kernels_figure():
    with open("/proc/self/status") as fh:
        vm_rss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    assert abs(rss_mb() - vm_rss_kb / 1024) < 0.05 * vm_rss_kb / 1024 + 5


def test_fit_scope_releases_even_when_the_fit_fails():
    with pytest.raises(RuntimeError, match="boom"):
        with fit_scope():
            keras.layers.Dense(2).build((None, 3))
            raise RuntimeError("boom")
    # The session was cleared on the way out: a new layer gets the first auto-generated name.
    assert keras.layers.Dense(2).name == "dense"


def test_trim_c_heap_runs_where_glibc_is():
    import platform

    assert trim_c_heap() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")

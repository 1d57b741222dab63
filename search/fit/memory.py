"""Memory and time hygiene between fold fits: what one fit leaves behind is released.

A search builds a new model for every fold of every trial in one process, so anything a backend
keeps per traced model grows without bound. ``keras.backend.clear_session()`` and ``gc.collect()``
release the models themselves; on TensorFlow (2.16-2.21 with Keras 3) two more things survive
them, about 6-11 MB per fold fit between them (measured with ``benchmarks/memory_growth.py``):

1. **Optimizer slots created inside the traced train step.** Without a ``tf.distribute``
   strategy, Keras defers ``optimizer.build`` to the first traced step, and ``tf.function`` wraps
   each slot's initialiser in a ``tf.cond`` whose branch functions stay registered in the eager
   context for the life of the process (four per weight under Adam). :func:`build_optimizer` builds
   the
   slots eagerly before ``fit``, so nothing is lifted.
2. **A gradient registration per traced train step.** Keras's TensorFlow optimizer sums gradients
   through ``tf.distribute``'s replica context even with a single replica; TensorFlow implements
   that with ``tf.custom_gradient``, which in graph mode registers a uniquely named gradient
   function (``CustomGradient-<uid>``) in TensorFlow's global gradient registry. The function
   closes over the traced graph, so every fold's whole train graph stays alive.
   :class:`FitMemoryGuard` drops the registrations a fit added once its model is gone.

With both, the resident set of a long search levels off after the first few trials instead of
growing linearly (figures in ``benchmarks/RESULTS.md``). Other backends need neither and are left
alone. The registry is private TensorFlow API, reached through ``search.runtime.compat``: a version
that moved it is refused when the search starts (``compat.check_supported``); outside a search
the guard then does nothing rather than fail.

After every fit the C heap's free pages are also handed back to the operating system
(``malloc_trim``, glibc only), so the resident set reports what the search holds rather than the
allocator's high-water mark; on JAX, whose growth is a warm-up of the runtime's arenas in the
first trials rather than a per-trial leak, that lowered the growth over 30 trials from +109 MB
to +85 and +77 MB in two measurements.

A third measure is about time: :func:`frozen_heap` moves the objects alive when the search starts
(TensorFlow, Keras and KerasTuner modules, the data: ~500k objects) out of the cyclic garbage
collector's view, so the collections ``clear_session()`` runs between folds take milliseconds
instead of ~0.3 s each (there were four per fold). Reference counting still frees those objects when
they
are dropped; only reference cycles among them wait until the search ends.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from typing import Any

from search.runtime import compat

_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"
_malloc_trim: Any = None  # glibc's malloc_trim, False where there is none (looked up once)


def rss_mb() -> float:
    """The process's current resident-set size in MB (Linux ``/proc``), or its peak elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def build_optimizer(model: Any) -> None:
    """Creates the optimizer's slot variables eagerly (see point 1 of the module docstring).

    Models built under a ``tf.distribute`` strategy are left alone: Keras builds their optimizer
    itself, under the strategy, before tracing.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or getattr(optimizer, "built", True):
        return
    if compat.model_distribute_strategy(model) is not None:
        return
    optimizer.build(model.trainable_variables)


class FitMemoryGuard:
    """Drops the custom-gradient registrations made while the guard was open.

    Safe because every graph traced during a fold fit belongs to that fold's model, which is gone
    when the guard is released; a ``tf.function`` that outlived the fold and was differentiated
    later would fail with "gradient registry has no entry for CustomGradient-<n>". Keras and the
    search keep no such function (a re-trace registers a fresh name).

    Use around one fold fit; close it after the fit's model is deleted and the session cleared
    (point 2 of the module docstring)::

        guard = FitMemoryGuard()
        ... build, fit, save, del model, clear_session() ...
        guard.release()
    """

    def __init__(self) -> None:
        registry = compat.tf_gradient_registry()
        self._before = set(registry) if registry is not None else None

    def release(self) -> int:
        """Forgets the new ``CustomGradient-*`` registrations; returns how many were dropped."""
        registry = compat.tf_gradient_registry()
        if registry is None or self._before is None:
            return 0
        added = [k for k in list(registry) if k not in self._before
                 and str(k).startswith(_CUSTOM_GRADIENT_PREFIX)]
        for key in added:
            registry.pop(key, None)
        return len(added)


def clear_session() -> None:
    """``keras.backend.clear_session()`` that keeps the dtype policy and the distribution.

    Keras 3's ``clear_session`` replaces its whole global state, which also holds the global dtype
    policy (``--mixed-precision``) and the JAX ``DataParallel`` distribution (``--data-parallel``),
    so clearing between folds would silently train every fold after the first in float32 on one
    device (with a batch already scaled for several).
    """
    import keras

    policy = keras.config.dtype_policy()
    distribution = keras.distribution.distribution()
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)
    if distribution is not None:
        keras.distribution.set_distribution(distribution)


@contextlib.contextmanager
def fit_scope() -> Iterator[None]:
    """Runs one fold fit in a fresh Keras session and releases what it leaves behind.

    Yields:
        Nothing; the fold's build, fit and saves run in the block.

    After the block, even when the fit failed: the session is cleared (dtype policy and
    distribution kept), the fit's gradient registrations are dropped (:class:`FitMemoryGuard`)
    before garbage is collected, so the graphs they held are freed now rather than at the next
    fold, and the C heap is trimmed.
    """
    clear_session()
    guard = FitMemoryGuard()
    try:
        yield
    finally:
        clear_session()
        guard.release()
        gc.collect()
        trim_c_heap()


def trim_c_heap() -> bool:
    """Returns the C heap's free pages to the OS (glibc ``malloc_trim``); False where unavailable."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if not _malloc_trim:
        return False
    _malloc_trim(0)
    return True


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Freezes the objects alive now for the garbage collector while the block runs.

    See the module docstring (third measure). Unfrozen on exit, so a library caller that runs
    several searches in one process gets its cyclic garbage collected as before; a heap the
    caller froze itself is left as it was.
    """
    if gc.get_freeze_count():  # the caller froze the heap already: leave it to them
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()

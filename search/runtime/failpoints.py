"""Failpoints: deterministic crash points for the resume tests (``CXR_TEST_KILL_AT``).

A deliberate fault-injection seam in the product, like FoundationDB's buggify or TiKV's
``fail`` crate: inert unless ``CXR_TEST_KILL_AT`` is set, which only the tests do.
``CXR_TEST_KILL_AT`` takes one of:

- ``trial:<i>:fold:<k>:epoch:<e>`` - SIGKILL this process at the end of epoch ``e`` (absolute,
  0-based, as Keras counts with ``initial_epoch``) of fold ``k`` of trial id ``int == i``;
- ``after_trial:<i>`` - SIGKILL once trial ``i`` has ended and the tuner has saved its state.

A SIGKILL cannot be caught, exactly like ``kill -9`` or a preemption. The value is checked once
at start-up (:func:`check_env`, called by ``search.engine`` before any training), so a
malformed value is refused with its accepted forms instead of crashing a run mid-fit.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Mapping

import keras

from search.errors import SearchError

ENV = "CXR_TEST_KILL_AT"
FORMS = ("trial:<i>:fold:<k>:epoch:<e>", "after_trial:<i>")
_PATTERNS = (re.compile(r"trial:(\d+):fold:(\d+):epoch:(\d+)"), re.compile(r"after_trial:(\d+)"))


def parse(value: str) -> tuple[str, ...]:
    """Splits a ``CXR_TEST_KILL_AT`` value into its fields.

    Returns:
        The ``:``-separated fields, e.g. ``("after_trial", "3")``.

    Raises:
        SearchError: when the value is none of :data:`FORMS` (naming the value and the forms).
    """
    if not any(p.fullmatch(value) for p in _PATTERNS):
        raise SearchError(
            f"{ENV}={value!r} is not a failpoint. Accepted forms (non-negative integers): "
            f"{' or '.join(FORMS)}, e.g. {ENV}=trial:1:fold:0:epoch:2. Unset {ENV} for a "
            "normal search; only the tests set it."
        )
    return tuple(value.split(":"))


def check_env(environ: Mapping[str, str] = os.environ) -> None:
    """Refuses a malformed ``CXR_TEST_KILL_AT`` before any training (see :func:`parse`)."""
    value = environ.get(ENV)
    if value:
        parse(value)


def _spec() -> tuple[str, ...] | None:
    value = os.environ.get(ENV)
    return parse(value) if value else None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def maybe_kill_after_trial(trial_id: str) -> None:
    """SIGKILLs when the spec is ``after_trial:<trial_id>``."""
    spec = _spec()
    if spec and spec[0] == "after_trial" and int(spec[1]) == int(trial_id):
        _die()


class KillAtEpoch(keras.callbacks.Callback):
    """SIGKILLs at the end of the epoch named by ``trial:<i>:fold:<k>:epoch:<e>``."""

    def __init__(self, trial_id: str, fold: int):
        super().__init__()
        spec = _spec()
        self.epoch = None
        if spec and spec[0] == "trial" and int(spec[1]) == int(trial_id) \
                and int(spec[3]) == fold:
            self.epoch = int(spec[5])

    def on_epoch_end(self, epoch, logs=None):
        if self.epoch is not None and epoch == self.epoch:
            _die()


def active() -> bool:
    """True when a kill point is set (only then is the callback added)."""
    return _spec() is not None

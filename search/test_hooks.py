"""Deterministic crash points for the resume tests (``CXR_TEST_KILL_AT``); inert otherwise.

``CXR_TEST_KILL_AT`` takes one of:
- ``trial:<i>:fold:<k>:epoch:<e>`` - SIGKILL this process at the end of epoch ``e`` (absolute,
  0-based, as Keras counts with ``initial_epoch``) of fold ``k`` of trial id ``int == i``;
- ``after_trial:<i>`` - SIGKILL once trial ``i`` has ended and the tuner has saved its state.
Only the tests set it; a SIGKILL cannot be caught, exactly like ``kill -9`` or a preemption.
"""

from __future__ import annotations

import os
import signal

import keras

ENV = "CXR_TEST_KILL_AT"


def _spec() -> list[str] | None:
    value = os.environ.get(ENV)
    return value.split(":") if value else None


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

"""Per-process state of the package: KerasTuner's client and server routed through it, the
chief's deadline, and the role's environment around a tuner's life.

The top of the package: it imports ``_roles``, ``_client`` and ``_server``; none of them
imports it, so imports run one way (``_roles`` <- ``_chief`` <- ``_server`` <- ``_install``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from search.distributed._client import make_retrying_client_class, stop_heartbeats
from search.distributed._roles import ENV_KEYS, DistributedRole
from search.distributed._server import serve_oracle
from search.runtime import compat

_installed = False
_deadline: float | None = None


def set_deadline(deadline: float | None) -> None:
    """Sets the chief's ``time.monotonic()`` deadline (from ``--time-budget``), or None."""
    global _deadline
    _deadline = deadline


def install() -> None:
    """Routes KerasTuner's chief server and worker client through this package (idempotent).

    ``BaseTuner`` looks both up at call time (``oracle_chief.start_server``,
    ``oracle_client.OracleClient``), so replacing the module attributes is enough (through
    ``search.runtime.compat``); nothing changes for a search without ``KERASTUNER_ORACLE_IP``.
    """
    global _installed
    if _installed:
        return
    compat.replace_oracle_client(make_retrying_client_class())
    compat.replace_start_server(lambda oracle: serve_oracle(oracle, deadline=_deadline))
    compat.silence_condition_proto()
    _installed = True


@contextlib.contextmanager
def role_environment(role: DistributedRole | None) -> Iterator[None]:
    """Sets KerasTuner's three variables for the block and restores them afterwards.

    KerasTuner reads them in ``BaseTuner.__init__``, ``search`` and ``save``, so the block must
    span the tuner's whole life. On exit it also stops this process's heartbeats and clears the
    deadline set by :func:`set_deadline` (the per-process state of this package).
    """
    if role is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.update(role.environ())
    try:
        yield
    finally:
        # The family is over for this process (done, budget spent, error): stop heartbeats, or
        # the chief would wait for a trial this worker no longer trains.
        stop_heartbeats()
        set_deadline(None)  # the chief's deadline was this family's (the engine sets it anew)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

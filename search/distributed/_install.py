"""Routes KerasTuner's chief server and worker client through this package (per process)."""

from __future__ import annotations

from search import compat
from search.distributed._client import _make_retrying_client_class
from search.distributed._server import serve_oracle

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
    ``search.compat``); nothing changes for a search without ``KERASTUNER_ORACLE_IP``.
    """
    global _installed
    if _installed:
        return
    compat.replace_oracle_client(_make_retrying_client_class())
    compat.replace_start_server(lambda oracle: serve_oracle(oracle, deadline=_deadline))
    compat.silence_condition_proto()
    _installed = True

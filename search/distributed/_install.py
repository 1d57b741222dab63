"""Routes KerasTuner's chief server and worker client through this package (per process)."""

from __future__ import annotations

from typing import Any

from search.distributed._client import _make_retrying_client_class
from search.distributed._server import serve_oracle

_installed = False
_deadline: float | None = None


def set_deadline(deadline: float | None) -> None:
    """Sets the chief's ``time.monotonic()`` deadline (from ``--time-budget``), or None."""
    global _deadline
    _deadline = deadline


def install() -> None:
    """Routes KerasTuner's chief server and worker client through this module (idempotent).

    ``BaseTuner`` looks both up at call time (``oracle_chief.start_server``,
    ``oracle_client.OracleClient``), so replacing the module attributes is enough; nothing
    changes for a search without ``KERASTUNER_ORACLE_IP``.
    """
    global _installed
    if _installed:
        return
    from keras_tuner.src.distribute import oracle_chief, oracle_client

    oracle_client._CXR_ORIGINAL_CLIENT = oracle_client.OracleClient
    oracle_client.OracleClient = _make_retrying_client_class()
    oracle_chief.start_server = lambda oracle: serve_oracle(oracle, deadline=_deadline)
    _silence_condition_proto()
    _installed = True


def _silence_condition_proto() -> None:
    """Drops a stray debug ``print`` in KerasTuner 1.4.8's ``Parent.to_proto``.

    Every conditional hyperparameter sent over gRPC printed its first value on the chief's and
    the workers' stdout. Same conversion, without the print.
    """
    from keras_tuner.src import protos
    from keras_tuner.src.engine import conditions

    def to_proto(self: Any) -> Any:
        first = self.values[0]
        if isinstance(first, str):
            kind = "string_value"
        elif isinstance(first, bool):
            kind = "boolean_value"
        elif isinstance(first, int):
            kind = "int_value"
        else:
            kind = "float_value"
        proto = protos.get_proto()
        values = [proto.Value(**{kind: v}) for v in self.values]
        return proto.Condition(parent=proto.Condition.Parent(name=self.name, values=values))

    conditions.Parent.to_proto = to_proto


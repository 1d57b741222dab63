"""Roles: ``--role/--oracle/--tuner-id`` and KerasTuner's variables -> :class:`DistributedRole`.

Also the environment variables and constants shared by the other parts of the package. This
module is the bottom of the package: it imports none of the others (``_install.py`` sets the
variables for a block with ``role_environment``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace

from search.errors import SearchError

ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
ENV_KEYS = (ENV_TUNER_ID, ENV_ORACLE_IP, ENV_ORACLE_PORT)
# Tuning knobs for tests and unusual clusters; the defaults suit real searches.
ENV_HEARTBEAT_S = "CXR_DIST_HEARTBEAT_S"
ENV_DEAD_AFTER_S = "CXR_DIST_DEAD_AFTER_S"
ENV_ORACLE_TIMEOUT_S = "CXR_DIST_ORACLE_TIMEOUT_S"

DEFAULT_HEARTBEAT_S = 10.0
DEFAULT_DEAD_AFTER_S = 120.0
DEFAULT_ORACLE_TIMEOUT_S = 3600.0
TUNER_META = "x-cxr-tuner-id"
ORPHAN_PREFIX = "orphan:"
DISTRIBUTED_JSON = ".distributed.json"
ASSIGNMENTS = "assignments.jsonl"


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class DistributedRole:
    """Who this process is in a distributed search.

    Attributes:
        role: ``"chief"`` (serves the oracle, trains nothing) or ``"worker"`` (runs trials).
        tuner_id: KerasTuner's tuner id: ``"chief"`` or a worker id such as ``"tuner1"``.
        host: The chief's address (the chief binds to it; workers connect to it).
        port: The oracle port of the first family; family ``i`` of ``--model both`` uses
            ``port + i`` so a late worker can never ask the ANN oracle for a CNN trial.
    """

    role: str
    tuner_id: str
    host: str
    port: int

    @property
    def is_chief(self) -> bool:
        return self.role == "chief"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def for_family(self, index: int) -> DistributedRole:
        """The role for the ``index``-th family of the search (one oracle server each)."""
        return replace(self, port=self.port + index)

    def environ(self) -> dict[str, str]:
        """The KerasTuner environment variables for this role."""
        return {ENV_TUNER_ID: self.tuner_id, ENV_ORACLE_IP: self.host,
                ENV_ORACLE_PORT: str(self.port)}


def parse_oracle(value: str) -> tuple[str, int]:
    """Parses ``HOST:PORT`` (IPv6 as ``[::1]:PORT``).

    Raises:
        SearchError: when the value has no port or the port is not 1..65535.
    """
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SearchError(
            f"--oracle {value!r} is not HOST:PORT. Give the chief's address and a free TCP port "
            "reachable from every worker, e.g. --oracle 10.0.0.5:8000 (the chief may bind "
            "0.0.0.0:8000 to listen on every interface)."
        )
    return host, int(port)


def default_worker_id(environ: Mapping[str, str] = os.environ) -> str:
    """A stable worker id: Slurm's task rank when launched by ``srun``, else host and pid.

    A stable id matters: a worker restarted under its old id gets its unfinished trial back at
    once instead of waiting for the chief to declare it dead.
    """
    for key in ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "RANK"):
        if environ.get(key, "").isdigit():
            return f"tuner{int(environ[key])}"
    return f"tuner-{socket.gethostname()}-{os.getpid()}"


def resolve_role(role: str | None = None, oracle: str | None = None, tuner_id: str | None = None,
                 environ: Mapping[str, str] = os.environ) -> DistributedRole | None:
    """Combines ``--role/--oracle/--tuner-id`` with KerasTuner's environment variables.

    Command-line options win; the variables ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
    ``KERASTUNER_ORACLE_PORT`` are honoured when set instead (KerasTuner's documented launch).

    Returns:
        The role, or None for an ordinary single-process search.

    Raises:
        SearchError: on an incomplete or contradictory combination, naming the fix.
    """
    env_id, env_ip, env_port = (environ.get(k) for k in ENV_KEYS)
    if role is None and oracle is None and env_ip is None:
        if tuner_id is not None:
            raise SearchError("--tuner-id only applies to a distributed search; add "
                              "--role worker --oracle HOST:PORT.")
        return None
    if oracle is not None:
        host, port = parse_oracle(oracle)
    elif env_ip is not None and env_port is not None:
        host, port = parse_oracle(f"{env_ip}:{env_port}")
    else:
        raise SearchError(
            "A distributed search needs the chief's address: add --oracle HOST:PORT (or set both "
            f"{ENV_ORACLE_IP} and {ENV_ORACLE_PORT})."
        )
    if role is None:
        if env_id is None:
            raise SearchError(
                f"{ENV_ORACLE_IP} is set but neither --role nor {ENV_TUNER_ID} says whether this "
                "process is the chief or a worker: add --role chief or --role worker."
            )
        role = "chief" if "chief" in env_id else "worker"
    if role not in ("chief", "worker"):
        raise SearchError(f"--role {role!r} is not 'chief' or 'worker'.")
    if role == "chief":
        if tuner_id not in (None, "chief"):
            raise SearchError("--tuner-id is for workers; the chief's id is always 'chief'.")
        return DistributedRole("chief", "chief", host, port)
    wid = tuner_id or (env_id if env_id and "chief" not in env_id else None)
    wid = wid or default_worker_id(environ)
    # KerasTuner tests `"chief" in tuner_id`: such a worker would start a second oracle server.
    if "chief" in wid or not wid.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SearchError(
            f"Worker id {wid!r} is not usable: use letters, digits, '-', '_' or '.', without the "
            "word 'chief' (KerasTuner treats any id containing it as the chief), e.g. tuner1."
        )
    return DistributedRole("worker", wid, host, port)

"""Run-folder membership: the chief's record, assignment logs, finished families, summaries."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.distributed._client import wait_for_oracle
from search.distributed._roles import ASSIGNMENTS, DISTRIBUTED_JSON, DistributedRole
from search.errors import SearchError


def write_membership(run_dir: Path, role: DistributedRole, families: list[str]) -> None:
    """The chief records the search it serves (read by workers before they join)."""
    from search.store.files import now_iso, write_json_atomic

    write_json_atomic(Path(run_dir) / DISTRIBUTED_JSON, {
        "oracle_port": role.port, "families": {f: role.port + i for i, f in enumerate(families)},
        "chief": {"host": socket.gethostname(), "pid": os.getpid(), "bind": role.host},
        "started": now_iso(),
    })


def check_membership(run_dir: Path, role: DistributedRole) -> dict[str, Any]:
    """A worker checks that the run folder belongs to the chief it talks to.

    Raises:
        SearchError: when the folder was not started by a chief, or by one on another port.
    """
    from search.store.files import read_json

    record = read_json(Path(run_dir) / DISTRIBUTED_JSON)
    if record is None:
        raise SearchError(
            f"{run_dir} was not started by a distributed chief (no {DISTRIBUTED_JSON}). Start "
            "the chief with --role chief on this run folder first; workers only join it."
        )
    if int(record.get("oracle_port", -1)) != role.port:
        raise SearchError(
            f"{run_dir} is served by a chief on port {record.get('oracle_port')} "
            f"(host {record.get('chief', {}).get('host')}), but this worker was given "
            f"--oracle {role.address}. Use the chief's port, or another --run-dir."
        )
    return record


def read_assignments(project_dir: Path) -> list[dict[str, Any]]:
    """The chief's assignment log of one family (see module docstring)."""
    path = Path(project_dir) / ASSIGNMENTS
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


FAMILY_DONE = ".distributed_done"


def mark_family_done(run_dir: Path, family: str, status: str) -> None:
    """The chief records that a family's search is over (late workers then skip it)."""
    from search.store.files import now_iso, write_json_atomic

    write_json_atomic(Path(run_dir) / family / FAMILY_DONE, {"status": status, "at": now_iso()})


def family_done(run_dir: Path, family: str) -> bool:
    """True when the chief finished this family (a worker must not wait for its oracle)."""
    return (Path(run_dir) / family / FAMILY_DONE).exists()


def worker_join_family(run_dir: Path, role: DistributedRole, index: int, family: str,
                       log: Callable[[str], None] = print) -> bool:
    """A worker waits for the chief's oracle of one family; False when that family is done.

    The wait gives up (returns False) as soon as the chief marks the family finished, so a
    worker started late, or restarted after the end, moves on instead of waiting an hour.
    """
    if family_done(run_dir, family):
        log(f"[{family}] already finished by the chief; skipping")
        return False
    fam_role = role.for_family(index)
    try:
        wait_for_oracle(fam_role.host, fam_role.port, log=log,
                        give_up=lambda: "done" if family_done(run_dir, family) else None)
    except SearchError:
        if family_done(run_dir, family):
            log(f"[{family}] finished by the chief while this worker waited; skipping")
            return False
        raise
    log(f"[{family}] worker {role.tuner_id} joined the chief at {fam_role.address}")
    return True


def worker_summary(family_dir: Path, tuner_id: str) -> dict[str, Any]:
    """What one worker did in a family, from the cv.json records it wrote."""
    mine = []
    for path in sorted(Path(family_dir).glob("trial_*/cv.json")):
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("tuner_id") == tuner_id:
                mine.append(record)
    return {"tuner_id": tuner_id,
            "trials_completed": sum(r.get("status") == "COMPLETED" for r in mine),
            "trials_failed": sum(r.get("status") == "FAILED" for r in mine),
            "trial_ids": [r.get("trial_id") for r in mine]}

"""Distributed search on KerasTuner's own chief/worker engine, made robust.

KerasTuner already distributes a search: the process whose ``KERASTUNER_TUNER_ID`` contains
``chief`` serves the oracle over gRPC (``keras_tuner/src/distribute/oracle_chief.py``) and every
other process wraps its oracle in an ``OracleClient`` that asks the chief for trials. All of them
share one project folder. This module does not replace that engine; it maps the service's
``--role chief|worker --oracle HOST:PORT`` options onto it and patches the places where upstream
loses work or hangs:

* **A worker dies mid-trial** (upstream: the trial stays in ``oracle.ongoing_trials`` forever and
  the chief never exits, keras-team/keras-tuner#915). Workers send a heartbeat (a ``GetTrial`` call
  carrying the tuner id as gRPC metadata) every few seconds; the chief hands the trial of a tuner
  silent for ``dead_after_s`` to the next worker that asks, and forgets the dead tuner so the chief
  can exit. A worker restarted under the same tuner id gets its own trial back at once
  (KerasTuner's ``create_trial`` returns ``ongoing_trials[tuner_id]``). Either way the trial's
  finished folds are on the shared disk, so only the unfinished fold is trained again.
* **An oracle call raises on the chief** (upstream: ``@synchronized`` does not release its lock
  on an exception, so the next call from another thread deadlocks; #915). The chief's entry points
  here take the same lock with ``try/finally``.
* **The chief is slow to start or restarts** (upstream: the client's per-call timeout fails the
  whole worker, #990, and a call in flight when the chief dies raises ``UNAVAILABLE``). Workers
  wait for the chief with back-off up to ``--oracle-timeout`` before building anything, and every
  call is retried on ``UNAVAILABLE``/``DEADLINE_EXCEEDED`` within that window.
* **The chief restarts while workers are mid-trial** (upstream: ``Oracle.reload`` puts every
  ongoing trial into the retry queue, so a second worker reruns a trial a live worker is still
  training). A restarted chief holds those trials for ``dead_after_s`` as orphans: a heartbeat
  from the worker that owns one re-adopts it; an orphan nobody claims goes to the retry queue.
* **Hyperband returns IDLE** while a round's trials finish; upstream workers then call
  ``create_trial`` in a tight loop. The client here sleeps between IDLE answers.
* **The chief exits too early or never** (#645, #983): the chief here stops serving only when the
  oracle is done and every live worker was told to stop, then lingers a moment for late calls.

Every assignment is appended to ``<project>/assignments.jsonl`` (assigned, adopted, requeued,
ended), so which worker ran which trial, and whether anything ran twice, can be audited.

Use: ``install()`` once per process (idempotent) before any tuner is built, and
``role_environment(role)`` around the tuner's construction and ``search()`` call. The chief's
serving loop is reached through KerasTuner's own ``BaseTuner.search``.

Layout (this module is the public entry; the others are private, and their imports run one
way: ``_roles`` <- ``_chief`` <- ``_server`` <- ``_install``, ``_roles`` <- ``_client`` <-
``_install``/``_membership``; ``tests/search/test_import_layout.py`` checks it):

* ``_roles.py``: ``--role/--oracle/--tuner-id`` parsing, KerasTuner's environment variables
  (imports none of the others);
* ``_client.py``: the worker side (wait for the chief, retrying client, heartbeats);
* ``_chief.py``: the chief's oracle (safe locking, worker liveness, orphaned trials);
* ``_server.py``: the chief's gRPC serving loop;
* ``_install.py``: routing KerasTuner's client and server through the above, the chief's
  deadline and ``role_environment`` (the per-process state; nothing else imports it);
* ``_membership.py``: run-folder files (``.distributed.json``, assignment logs, finished
  families, worker summaries).
"""

from __future__ import annotations

from search.distributed._chief import LivenessOracleMixin, attach_liveness
from search.distributed._client import oracle_reachable, wait_for_oracle
from search.distributed._install import install, role_environment, set_deadline
from search.distributed._membership import (FAMILY_DONE, check_membership, family_done,
                                            mark_family_done, read_assignments,
                                            worker_join_family, worker_summary,
                                            write_membership)
from search.distributed._roles import (ASSIGNMENTS, DEFAULT_DEAD_AFTER_S, DEFAULT_HEARTBEAT_S,
                                       DEFAULT_ORACLE_TIMEOUT_S, DISTRIBUTED_JSON,
                                       ENV_DEAD_AFTER_S, ENV_HEARTBEAT_S, ENV_KEYS,
                                       ENV_ORACLE_IP, ENV_ORACLE_PORT, ENV_ORACLE_TIMEOUT_S,
                                       ENV_TUNER_ID, DistributedRole, default_worker_id,
                                       parse_oracle, resolve_role)
from search.distributed._server import serve_oracle

__all__ = [
    "ASSIGNMENTS", "DEFAULT_DEAD_AFTER_S", "DEFAULT_HEARTBEAT_S", "DEFAULT_ORACLE_TIMEOUT_S",
    "DISTRIBUTED_JSON", "ENV_DEAD_AFTER_S", "ENV_HEARTBEAT_S", "ENV_KEYS", "ENV_ORACLE_IP",
    "ENV_ORACLE_PORT", "ENV_ORACLE_TIMEOUT_S", "ENV_TUNER_ID", "FAMILY_DONE", "DistributedRole",
    "LivenessOracleMixin", "attach_liveness", "check_membership", "default_worker_id",
    "family_done", "install", "mark_family_done", "oracle_reachable", "parse_oracle",
    "read_assignments", "resolve_role", "role_environment", "serve_oracle", "set_deadline",
    "wait_for_oracle", "worker_join_family", "worker_summary", "write_membership",
]

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
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
_TUNER_META = "x-cxr-tuner-id"
_ORPHAN = "orphan:"
DISTRIBUTED_JSON = ".distributed.json"
_CLIENTS: list[Any] = []  # this process's live oracle clients (see role_environment)
ASSIGNMENTS = "assignments.jsonl"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------


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


@contextlib.contextmanager
def role_environment(role: DistributedRole | None) -> Iterator[None]:
    """Sets KerasTuner's three variables for the block and restores them afterwards.

    KerasTuner reads them in ``BaseTuner.__init__``, ``search`` and ``save``, so the block must
    span the tuner's whole life.
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
        while _CLIENTS:
            _CLIENTS.pop().stop_heartbeat()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------------------------
# Worker side: wait for the chief, retrying client, heartbeats
# --------------------------------------------------------------------------------------------


def oracle_reachable(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when a gRPC server answers at ``host:port`` within ``timeout_s``."""
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def wait_for_oracle(host: str, port: int, timeout_s: float | None = None, *,
                    log: Callable[[str], None] = print,
                    give_up: Callable[[], str | None] | None = None) -> None:
    """Blocks until the chief's oracle answers, with back-off (the #990 mitigation).

    A chief may take minutes to start (data decoding, building the space), so workers may be
    launched first. Args: ``give_up`` is polled between attempts; a non-None string (e.g. "the
    run is already complete") ends the wait with that reason.

    Raises:
        SearchError: after ``timeout_s`` (default ``CXR_DIST_ORACLE_TIMEOUT_S`` or 1 h), naming
            the address and what to check; or with ``give_up``'s reason.
    """
    timeout_s = _env_float(ENV_ORACLE_TIMEOUT_S, DEFAULT_ORACLE_TIMEOUT_S) \
        if timeout_s is None else timeout_s
    start = time.monotonic()
    delay, next_log = 0.5, start
    while True:
        if oracle_reachable(host, port, timeout_s=min(5.0, max(0.5, delay))):
            return
        now = time.monotonic()
        if give_up is not None and (reason := give_up()):
            raise SearchError(reason)
        if now - start >= timeout_s:
            raise SearchError(
                f"No chief answered at {host}:{port} within {timeout_s:.0f} s. Start the chief "
                "first (run_search.py search ... --role chief --oracle HOST:PORT) with the same "
                "--oracle, check that the port is open between the machines, or raise the wait "
                f"with {ENV_ORACLE_TIMEOUT_S}=SECONDS."
            )
        if now >= next_log:
            log(f"[worker] waiting for the chief at {host}:{port} "
                f"({now - start:.0f} s of {timeout_s:.0f} s)")
            next_log = now + 30.0
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


class _RetryingStub:
    """Proxies an ``OracleStub``: retries transient errors, tags calls with the tuner id."""

    _RETRY = ("UNAVAILABLE", "DEADLINE_EXCEEDED")

    def __init__(self, stub: Any, tuner_id: str, window_s: float, call_timeout_s: float,
                 on_response: Callable[[str, Any], None]):
        self._stub = stub
        self._meta = ((_TUNER_META, tuner_id),)
        self._window_s = window_s
        self._call_timeout_s = call_timeout_s
        self._on_response = on_response

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            import grpc

            kwargs["timeout"] = self._call_timeout_s
            kwargs["wait_for_ready"] = True
            kwargs["metadata"] = self._meta
            start, delay = time.monotonic(), 1.0
            while True:
                try:
                    response = method(request, **kwargs)
                    self._on_response(name, response)
                    return response
                except grpc.RpcError as err:
                    code = err.code().name if hasattr(err, "code") else "UNKNOWN"
                    if code not in self._RETRY or time.monotonic() - start > self._window_s:
                        raise SearchError(
                            f"The chief oracle failed a {name} call ({code}: "
                            f"{getattr(err, 'details', lambda: '')()}). If the chief is down, "
                            "restart it with the same command; the worker can then be restarted "
                            "with the same --tuner-id and resumes its trial."
                        ) from err
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)

        return call


def _make_retrying_client_class() -> type:
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_client
    from keras_tuner.src.engine import trial as trial_module

    base = getattr(oracle_client, "_CXR_ORIGINAL_CLIENT", oracle_client.OracleClient)

    class RetryingOracleClient(base):  # type: ignore[misc, valid-type]
        """KerasTuner's ``OracleClient`` with retries, heartbeats and an IDLE back-off."""

        def __init__(self, oracle: Any):
            super().__init__(oracle)
            window = _env_float(ENV_ORACLE_TIMEOUT_S, DEFAULT_ORACLE_TIMEOUT_S)
            self._current: str | None = None
            self._raw_stub = self.stub
            # A call waits for the channel at most 5 min, then is retried within the window:
            # a chief restart costs a pause, not the worker.
            self.stub = _RetryingStub(self.stub, self.tuner_id, window, min(300.0, window),
                                      self._seen)
            self._stop = threading.Event()
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name="cxr-heartbeat")
            self._beat.start()
            _CLIENTS.append(self)

        def stop_heartbeat(self) -> None:
            """Stops telling the chief this worker is alive (its trial can then be reassigned)."""
            self._stop.set()

        def _seen(self, name: str, response: Any) -> None:
            if name == "CreateTrial":
                trial = response.trial
                status = trial_module.Trial.from_proto(trial).status
                self._current = trial.trial_id if status == "RUNNING" else None
            elif name == "EndTrial":
                self._current = None

        def _heartbeat(self) -> None:
            interval = _env_float(ENV_HEARTBEAT_S, DEFAULT_HEARTBEAT_S)
            while not self._stop.wait(interval):
                trial_id = self._current
                if trial_id is None:
                    continue
                with contextlib.suppress(Exception):  # a missed beat is harmless
                    self._raw_stub.GetTrial(
                        protos.get_service().GetTrialRequest(trial_id=trial_id),
                        timeout=interval, metadata=((_TUNER_META, self.tuner_id),))

        def __getattr__(self, name: str) -> Any:
            # The service's tuner reads a few more oracle attributes than upstream forwards
            # (e.g. ``trial_cap``); the worker's local oracle has the same configuration.
            try:
                return super().__getattr__(name)
            except AttributeError:
                if name.startswith("__") or name == "_oracle":
                    raise
                return getattr(self._oracle, name)

        def trials_ended(self) -> list[str]:
            """Ended trial ids, read from the shared project folder (the chief writes them)."""
            ended = []
            for path in sorted(Path(self._oracle._project_dir).glob("trial_*/trial.json")):
                with contextlib.suppress(OSError, ValueError):
                    record = json.loads(path.read_text(encoding="utf-8"))
                    if record.get("status") in ("COMPLETED", "FAILED", "INVALID"):
                        ended.append(record["trial_id"])
            return ended

        def create_trial(self, tuner_id: str) -> Any:
            trial = super().create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.IDLE:
                time.sleep(1.0)  # Hyperband waits for a round; do not hammer the chief
            if trial.status == trial_module.TrialStatus.STOPPED:
                self._stop.set()
            return trial

    return RetryingOracleClient


# --------------------------------------------------------------------------------------------
# Chief side: safe locking, liveness, orphans, serving loop
# --------------------------------------------------------------------------------------------


def _safe_locked(func: Callable[..., Any]) -> Callable[..., Any]:
    """Takes KerasTuner's per-oracle lock like ``@synchronized``, but releases it on errors."""
    from keras_tuner.src.engine import oracle as oracle_module

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = threading.current_thread().name
        if oracle_module.THREADS[self] == name:
            return func(self, *args, **kwargs)
        with oracle_module.LOCKS[self]:
            oracle_module.THREADS[self] = name
            try:
                return func(self, *args, **kwargs)
            finally:
                oracle_module.THREADS[self] = None

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


class LivenessOracleMixin:
    """Mixed into the chief's oracle class at run time by :func:`attach_liveness`."""

    _cxr_seen: dict[str, float]
    _cxr_dead_after_s: float
    _cxr_stopping: bool

    def _cxr_log(self, event: str, trial_id: str | None, tuner_id: str | None, **extra: Any
                 ) -> None:
        record = {"time": time.time(), "event": event, "trial_id": trial_id,
                  "tuner_id": tuner_id, **extra}
        with contextlib.suppress(OSError):
            path = Path(self._project_dir) / ASSIGNMENTS  # type: ignore[attr-defined]
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def note_alive(self, tuner_id: str | None, trial_id: str | None = None) -> None:
        """Records contact from a worker; re-adopts an orphaned trial it still runs."""
        now = time.monotonic()
        if tuner_id:
            self._cxr_seen[tuner_id] = now
        if not (tuner_id and trial_id):
            return
        orphan = f"{_ORPHAN}{trial_id}"
        ongoing = self.ongoing_trials  # type: ignore[attr-defined]
        if orphan in ongoing and tuner_id not in ongoing:
            ongoing[tuner_id] = ongoing.pop(orphan)
            self.tuner_ids.add(tuner_id)  # type: ignore[attr-defined]
            self._cxr_log("adopted", trial_id, tuner_id)

    @_safe_locked
    def create_trial(self, tuner_id: str) -> Any:
        from keras_tuner.src.engine import trial as trial_module

        self.note_alive(tuner_id)
        self._cxr_reap_locked()
        if self._cxr_stopping and tuner_id not in self.ongoing_trials:  # type: ignore
            self.tuner_ids.discard(tuner_id)  # type: ignore[attr-defined]
            return trial_module.Trial(self.get_space(),  # type: ignore[attr-defined]
                                      trial_id="stopped",
                                      status=trial_module.TrialStatus.STOPPED)
        had = tuner_id in self.ongoing_trials  # type: ignore[attr-defined]
        trial = super().create_trial(tuner_id)  # type: ignore[misc]
        if trial.status == trial_module.TrialStatus.RUNNING:
            self._cxr_log("resumed" if had else "assigned", trial.trial_id, tuner_id)
        elif trial.status == trial_module.TrialStatus.STOPPED:
            if any(t != tuner_id for t in self.ongoing_trials):  # type: ignore[attr-defined]
                # Trials still run elsewhere and may come back (their worker dies): keep this
                # worker waiting instead of letting it exit and leaving nobody to rerun them.
                self.tuner_ids.add(tuner_id)  # type: ignore[attr-defined]
                return trial_module.Trial(self.get_space(),  # type: ignore[attr-defined]
                                          trial_id="idle", status=trial_module.TrialStatus.IDLE)
            # Some oracles (e.g. a capped one) return STOPPED without forgetting the tuner;
            # the chief only exits once every tuner has been told to stop.
            self.tuner_ids.discard(tuner_id)  # type: ignore[attr-defined]
        return trial

    @_safe_locked
    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int = 0) -> Any:
        return super().update_trial(trial_id, metrics, step=step)  # type: ignore[misc]

    @_safe_locked
    def end_trial(self, trial: Any) -> None:
        ongoing_ids = {t.trial_id for t in self.ongoing_trials.values()}  # type: ignore
        queue = self._retry_queue  # type: ignore[attr-defined]
        if trial.trial_id not in ongoing_ids and trial.trial_id in queue and \
                trial.status == "COMPLETED":
            # A worker declared dead finished after all: take its result, skip the rerun.
            queue.remove(trial.trial_id)
            ongoing_ids.add(trial.trial_id)
        if trial.trial_id not in ongoing_ids:
            # A retried EndTrial whose first attempt did land, or a worker declared dead that
            # finished after all: counting it twice would corrupt end_order and failure counts.
            self._cxr_log("ignored_end", trial.trial_id, None, status=trial.status)
            return
        owner = next((k for k, t in self.ongoing_trials.items()  # type: ignore[attr-defined]
                      if t.trial_id == trial.trial_id), None)
        super().end_trial(trial)  # type: ignore[misc]
        self._cxr_log("ended", trial.trial_id, owner, status=trial.status)

    @_safe_locked
    def reap(self) -> None:
        """Requeues the trials of workers silent for ``dead_after_s``; forgets dead workers."""
        self._cxr_reap_locked()

    def _cxr_reap_locked(self) -> None:
        now = time.monotonic()
        limit = self._cxr_dead_after_s
        ongoing = self.ongoing_trials  # type: ignore[attr-defined]
        changed = False
        for tuner_id in list(ongoing):
            # First sight of an entry (e.g. restored state) starts its grace period now.
            if now - self._cxr_seen.setdefault(tuner_id, now) <= limit:
                continue
            if self._cxr_stopping:
                # Budget spent: leave it ongoing so a resumed chief reruns it (fold-resumed).
                self.tuner_ids.discard(tuner_id)  # type: ignore[attr-defined]
                continue
            trial = ongoing.pop(tuner_id)
            self._retry_queue.append(trial.trial_id)  # type: ignore[attr-defined]
            self.tuner_ids.discard(tuner_id)  # type: ignore[attr-defined]
            self._cxr_seen.pop(tuner_id, None)
            self._cxr_log("requeued", trial.trial_id, tuner_id,
                          reason=f"no contact for {limit:.0f} s")
            print(f"[chief] worker {tuner_id.removeprefix(_ORPHAN)} silent for {limit:.0f} s: "
                  f"trial {trial.trial_id} goes to the next worker that asks", flush=True)
            changed = True
        for tuner_id in list(self.tuner_ids):  # type: ignore[attr-defined]
            if tuner_id not in ongoing and now - self._cxr_seen.get(tuner_id, now) > limit:
                self.tuner_ids.discard(tuner_id)  # type: ignore[attr-defined]
                self._cxr_seen.pop(tuner_id, None)
        if changed:
            self.save()  # type: ignore[attr-defined]

    def live_workers(self) -> list[str]:
        """Tuner ids heard from within ``dead_after_s``."""
        now = time.monotonic()
        return sorted(t for t, s in self._cxr_seen.items()
                      if not t.startswith(_ORPHAN) and now - s <= self._cxr_dead_after_s)


def attach_liveness(oracle: Any, dead_after_s: float | None = None) -> Any:
    """Turns a KerasTuner oracle into a liveness-aware chief oracle, in place (idempotent).

    The oracle's class is swapped for a subclass with :class:`LivenessOracleMixin` in front, so
    any KerasTuner oracle (Hyperband, Bayesian, random) keeps its algorithm. Trials that were
    ongoing when a previous chief died (``Oracle.reload`` put them in the retry queue) become
    orphans held for ``dead_after_s``, so a worker still training one can claim it back.
    """
    if not isinstance(oracle, LivenessOracleMixin):
        cls = type(oracle)
        oracle.__class__ = type(f"Distributed{cls.__name__}", (LivenessOracleMixin, cls), {})
        oracle._cxr_seen = {}
        oracle._cxr_stopping = False
        from keras_tuner.src.engine import trial as trial_module

        now = time.monotonic()
        for trial_id in list(oracle._retry_queue):
            trial = oracle.trials.get(trial_id)
            # RUNNING on disk = it was running when the chief went down; INVALID = a real retry.
            if trial is not None and trial.status == trial_module.TrialStatus.RUNNING:
                oracle._retry_queue.remove(trial_id)
                oracle.ongoing_trials[f"{_ORPHAN}{trial_id}"] = trial
                oracle._cxr_seen[f"{_ORPHAN}{trial_id}"] = now
                oracle._cxr_log("orphaned", trial_id, None)
        _harden_display(oracle)
    oracle._cxr_dead_after_s = (_env_float(ENV_DEAD_AFTER_S, DEFAULT_DEAD_AFTER_S)
                                if dead_after_s is None else dead_after_s)
    return oracle


def _harden_display(oracle: Any) -> None:
    """Makes the oracle's console display unable to fail an oracle call.

    Upstream ``Display.on_trial_end`` indexes ``trial_start[trial_id]``, which a restarted chief
    does not have for trials started by its predecessor: the ``KeyError`` would fail the
    worker's ``EndTrial`` after the result was recorded. Printing is not worth a lost trial.
    """
    display = oracle._display
    for name in ("on_trial_begin", "on_trial_end"):
        method = getattr(display, name)

        def safe(trial: Any, _method: Callable[[Any], None] = method) -> None:
            try:
                _method(trial)
            except Exception as err:  # noqa: BLE001 (cosmetic output only)
                print(f"[chief] trial {trial.trial_id}: {err!r} in the console display "
                      "(ignored)", flush=True)

        setattr(display, name, safe)


def _make_servicer_class() -> type:
    from keras_tuner.src.distribute import oracle_chief

    class TrackingServicer(oracle_chief.OracleServicer):
        """Notes which worker called; heartbeats arrive as ``GetTrial`` calls."""

        @staticmethod
        def _tuner(context: Any) -> str | None:
            return dict(context.invocation_metadata() or ()).get(_TUNER_META)

        def _alive(self, context: Any, trial_id: str | None = None) -> None:
            tuner = self._tuner(context)
            if tuner:
                # Through the lock: a heartbeat may re-adopt an orphan (mutates ongoing_trials).
                _safe_locked(lambda o: o.note_alive(tuner, trial_id))(self.oracle)

        def GetTrial(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
            self._alive(context, request.trial_id)
            return super().GetTrial(request, context)

        def UpdateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            self._alive(context, request.trial_id)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            self._alive(context)
            return super().EndTrial(request, context)

        def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            self._alive(context)
            return super().CreateTrial(request, context)

    return TrackingServicer


def serve_oracle(oracle: Any, *, deadline: float | None = None, poll_s: float = 1.0,
                 linger_s: float = 3.0, log: Callable[[str], None] | None = None) -> str:
    """Serves the oracle until the search is over; replaces ``oracle_chief.start_server``.

    Args:
        oracle: The chief's oracle (liveness is attached here if it is not yet).
        deadline: ``time.monotonic()`` value after which no new trial is handed out (the
            ``--time-budget``); trials running then finish, and unfinished ones stay for resume.
        poll_s: How often the loop checks for dead workers and the end.
        linger_s: How long the server keeps answering after the end, so a worker's last calls
            (``EndTrial``, then ``CreateTrial`` -> STOPPED) are not refused (#645).
        log: Where progress lines go (default: print).

    Returns:
        ``"completed"`` when every trial ended, ``"budget_exhausted"`` when the deadline stopped
        it with trials left.
    """
    import grpc
    from concurrent import futures
    from keras_tuner.src import protos

    log = log or (lambda line: print(line, flush=True))
    attach_liveness(oracle)
    host = os.environ[ENV_ORACLE_IP]
    port = os.environ[ENV_ORACLE_PORT]
    # One handler thread, as upstream: the oracle's algorithms are not written for concurrency.
    # Heartbeats are tiny, so they do not starve the other calls.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = _make_servicer_class()(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SearchError(
            f"The chief could not listen on {host}:{port} (in use, or not an address of this "
            "machine). Pick a free port for --oracle, or bind 0.0.0.0:PORT."
        )
    server.start()
    log(f"[chief] oracle serving on {host}:{port} "
        f"({len(oracle.trials)} trials on record, {len(oracle.ongoing_trials)} held for workers)")
    status = "completed"
    try:
        last_report = 0.0
        while True:
            time.sleep(poll_s)
            if deadline is not None and time.monotonic() >= deadline and not oracle._cxr_stopping:
                oracle._cxr_stopping = True
                servicer.stop_triggered = True
                log("[chief] time budget spent: no new trials; waiting for running ones")
            oracle.reap()
            if servicer.stop_triggered and _chief_done(oracle):
                if oracle.ongoing_trials:
                    status = "budget_exhausted"
                break
            now = time.monotonic()
            if now - last_report > 60:
                last_report = now
                log(f"[chief] {len(oracle.trials)} trials started, "
                    f"{len(oracle.end_order)} ended; live workers: "
                    f"{', '.join(oracle.live_workers()) or 'none yet'}")
        time.sleep(linger_s)
    finally:
        server.stop(grace=2.0).wait(5.0)
        oracle.save()
    log(f"[chief] search {status}: {len(oracle.end_order)} trials ended")
    # BaseTuner.search returns None after the server; the caller reads the outcome here.
    oracle.cxr_serve_status = status
    return status


def _chief_done(oracle: Any) -> bool:
    if oracle._cxr_stopping:
        # Budget spent: done when no trial is still being trained by a live worker (or may be
        # claimed by one, for an orphan in its grace period); the others stay for a resume.
        now, limit = time.monotonic(), oracle._cxr_dead_after_s
        alive = {t for t, seen in oracle._cxr_seen.items() if now - seen <= limit}
        return not (set(oracle.ongoing_trials) & alive) and not (oracle.tuner_ids & alive)
    return not oracle.ongoing_trials and not oracle.tuner_ids


# --------------------------------------------------------------------------------------------
# Installation and run-folder membership
# --------------------------------------------------------------------------------------------

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


def write_membership(run_dir: Path, role: DistributedRole, families: list[str]) -> None:
    """The chief records the search it serves (read by workers before they join)."""
    from search.run_folder import now_iso, write_json_atomic

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
    from search.run_folder import read_json

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


# --------------------------------------------------------------------------------------------
# Helpers for the search engine (search/engine.py)
# --------------------------------------------------------------------------------------------

FAMILY_DONE = ".distributed_done"


def mark_family_done(run_dir: Path, family: str, status: str) -> None:
    """The chief records that a family's search is over (late workers then skip it)."""
    from search.run_folder import now_iso, write_json_atomic

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

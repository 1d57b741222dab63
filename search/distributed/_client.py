"""Worker side: wait for the chief, a retrying gRPC client, heartbeats."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.distributed._roles import (DEFAULT_HEARTBEAT_S, DEFAULT_ORACLE_TIMEOUT_S,
                                       ENV_HEARTBEAT_S, ENV_ORACLE_TIMEOUT_S, TUNER_META, env_float)
from search.errors import SearchError
from search.runtime import compat

_CLIENTS: list[Any] = []  # this process's live oracle clients (see role_environment)


def stop_heartbeats() -> None:
    """Stops the heartbeats of every oracle client of this process (``role_environment`` exit)."""
    while _CLIENTS:
        _CLIENTS.pop().stop_heartbeat()


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
    timeout_s = env_float(ENV_ORACLE_TIMEOUT_S, DEFAULT_ORACLE_TIMEOUT_S) \
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
        self._meta = ((TUNER_META, tuner_id),)
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


def make_retrying_client_class() -> type:
    protos = compat.grpc_protos()
    trial_module = compat.trial_module()
    base = compat.original_oracle_client()

    class RetryingOracleClient(base):  # type: ignore[misc, valid-type]
        """KerasTuner's ``OracleClient`` with retries, heartbeats and an IDLE back-off."""

        def __init__(self, oracle: Any):
            super().__init__(oracle)
            window = env_float(ENV_ORACLE_TIMEOUT_S, DEFAULT_ORACLE_TIMEOUT_S)
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
            interval = env_float(ENV_HEARTBEAT_S, DEFAULT_HEARTBEAT_S)
            while not self._stop.wait(interval):
                trial_id = self._current
                if trial_id is None:
                    continue
                with contextlib.suppress(Exception):  # a missed beat is harmless
                    self._raw_stub.GetTrial(
                        protos.get_service().GetTrialRequest(trial_id=trial_id),
                        timeout=interval, metadata=((TUNER_META, self.tuner_id),))

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
            for path in sorted(Path(compat.project_dir(self._oracle)).glob("trial_*/trial.json")):
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

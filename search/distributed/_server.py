"""Chief side: the gRPC serving loop that replaces KerasTuner's ``start_server``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from search.distributed._chief import attach_liveness, safe_locked
from search.distributed._roles import ENV_ORACLE_IP, ENV_ORACLE_PORT, TUNER_META
from search.errors import SearchError
from search.runtime import compat


def _make_servicer_class() -> type:
    class TrackingServicer(compat.oracle_servicer_base()):  # type: ignore[misc]
        """Notes which worker called; heartbeats arrive as ``GetTrial`` calls."""

        @staticmethod
        def _tuner(context: Any) -> str | None:
            return dict(context.invocation_metadata() or ()).get(TUNER_META)

        def _alive(self, context: Any, trial_id: str | None = None) -> None:
            tuner = self._tuner(context)
            if tuner:
                # Through the lock: a heartbeat may re-adopt an orphan (mutates ongoing_trials).
                safe_locked(lambda o: o.note_alive(tuner, trial_id))(self.oracle)

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
    from concurrent import futures

    import grpc

    protos = compat.grpc_protos()
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
    log(f"[chief] oracle serving on {host}:{port} ({len(oracle.trials)} trials on record, "
        f"{len(compat.ongoing_trials(oracle))} held for workers)")
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
                if compat.ongoing_trials(oracle):
                    status = "budget_exhausted"
                break
            now = time.monotonic()
            if now - last_report > 60:
                last_report = now
                log(f"[chief] {len(oracle.trials)} trials started, "
                    f"{len(compat.end_order(oracle))} ended; live workers: "
                    f"{', '.join(oracle.live_workers()) or 'none yet'}")
        time.sleep(linger_s)
    finally:
        server.stop(grace=2.0).wait(5.0)
        oracle.save()
    log(f"[chief] search {status}: {len(compat.end_order(oracle))} trials ended")
    # BaseTuner.search returns None after the server; the caller reads the outcome here.
    oracle.cxr_serve_status = status
    return status


def _chief_done(oracle: Any) -> bool:
    if oracle._cxr_stopping:
        # Budget spent: done when no trial is still being trained by a live worker (or may be
        # claimed by one, for an orphan in its grace period); the others stay for a resume.
        now, limit = time.monotonic(), oracle._cxr_dead_after_s
        alive = {t for t, seen in oracle._cxr_seen.items() if now - seen <= limit}
        return (not (set(compat.ongoing_trials(oracle)) & alive)
                and not (compat.tuner_ids(oracle) & alive))
    return not compat.ongoing_trials(oracle) and not compat.tuner_ids(oracle)


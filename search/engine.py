"""The library call behind ``run_search.py search``: ``run_search_job(config) -> summary``.

Order of work: validate every option, check the run folder (resume allowed? locked?), load the
data and the recorded test split, then one KerasTuner project per family. A rerun of the same
command resumes; see ``search.store.run_folder`` for what a resume must share with the saved run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from search import preflight
from search.config import (AUTO_OBJECTIVE, SearchConfig, check_two_classes, resolve_budgets,
                           resolve_min_epochs, resolve_weights, tensorboard_dir, validate)
from search.errors import SearchError
from search.fit.memory import frozen_heap
from search.runtime.signals import SearchInterrupted, handle_signals
from search.schedule.budget import BudgetExhausted, TimeBudget
from search.store import run_folder as rf
from search.store.lock import RunLock
from search.watch.progress import Progress, format_duration


def _prepare_data(config: SearchConfig, run_dir: Path, progress: Progress, resuming: bool):
    import data_pipeline

    with progress.capture_logs():  # skipped images, train/ images left out: into search.log
        ds = data_pipeline.load_dataset(config.data, image_size=config.image_size,
                                        color_mode=config.color_mode,
                                        positive_class=config.positive_class,
                                        progress=not config.quiet)
        split_path = run_dir / rf.SPLIT_JSON
        if resuming and split_path.exists():
            split = data_pipeline.load_split(split_path, ds)
        else:
            split = data_pipeline.split_train_test(ds, test_fraction=config.test_fraction,
                                                   seed=config.seed)
            data_pipeline.save_split(split, ds, split_path)
    idx = np.asarray(split.train_idx)
    x, y, groups = ds.x[idx], ds.y[idx], ds.groups[idx]
    folds = data_pipeline.make_folds(y, groups, config.folds, config.seed)
    for family in config.families:
        preflight.check_probe_objective(config.objective_for(family)[0], ds, idx, folds)
    progress.line(f"data: {len(ds.y)} images in {config.data} ({config.image_size} px "
                  f"{config.color_mode}), {len(idx)} for search in {config.folds} fold(s), "
                  f"{len(split.test_idx)} held out for the test report ({split.source})")
    return ds, x, y, folds, idx


def _write_tensorboard_experiment(tb_dir: Path, config: SearchConfig, space,
                                  progress: Progress) -> None:
    """The HParams experiment (every dimension of the searched families, the cv/ metrics), and
    the session of every trial already on disk (a resume lists the trials a kill left)."""
    from search.watch import tensorboard

    names = [n for f in config.families for n in space.dims(f)]
    names += ["family", "diagnosis"] + (["tuner/epochs", "tuner/round"]
                                        if config.tuner == "hyperband" else [])
    try:
        tensorboard.write_experiment(tb_dir, names,
                                     tensorboard.experiment_metrics(config.objective))
        for family in config.families:
            tensorboard.write_sessions(tb_dir, Path(config.run_dir) / family)
    except OSError as err:
        progress.line(f"warning: TensorBoard files cannot be written to {tb_dir} ({err}); "
                      "the search goes on without them (--no-tensorboard silences this)")


def _family_summary(tuner) -> dict[str, Any]:
    from search.tuners.oracle_base import is_pruned, is_suspended

    oracle = tuner.oracle
    ended = [oracle.trials[t] for t in oracle.trials_ended()]
    pruned = sum(is_pruned(t) for t in ended)
    suspended = sum(is_suspended(t) for t in ended)
    completed = sum(t.status == "COMPLETED" for t in ended) - pruned - suspended
    best = tuner.best_trial()
    return {"trials_completed": completed, "trials_pruned": pruned,
            "trials_suspended": suspended,
            "trials_failed": sum(t.status in ("FAILED", "INVALID") for t in ended),
            "trials_total": oracle.trial_cap,
            "best_trial_id": best.trial_id if best else None,
            "best_score": best.score if best else None,
            "best_hyperparameters": ({k: v for k, v in best.hyperparameters.values.items()
                                      if not k.startswith("tuner/")} if best else None)}


def make_hypermodel(family: str, config: SearchConfig, space, input_shape: tuple[int, ...],
                    counts: list[int]) -> Any:
    """The family's hypermodel for this search (budgets; the transfer family's weights and the
    epoch horizon that fixes its fine-tuning stages, spaces/transfer.py)."""
    import spaces

    extra: dict[str, Any] = {}
    if family == "transfer":
        from spaces.transfer import resolve_weights as keras_weights

        extra["weights"] = keras_weights(config.weights)
        extra["max_epochs"] = int(config.max_epochs)
    return spaces.HYPERMODELS[family](
        input_shape=input_shape, num_classes=len(counts), class_counts=counts, space=space,
        max_params=config.max_params, max_gflops=config.max_gflops or None, **extra)


def _run_family(family: str, config: SearchConfig, run_dir: Path, space, data, class_names,
                counts, progress: Progress, budget: TimeBudget, plan=None,
                role=None) -> dict[str, Any]:
    from search import distributed
    from search.runtime import devices
    from search.tuners.cv_tuner import CVTuner
    from search.tuners.oracles import make_oracle

    if family == "transfer":
        progress.line(f"[{family}] {preflight.weights_text(config.weights)}")
    hypermodel = make_hypermodel(family, config, space, tuple(int(d) for d in data.x.shape[1:]),
                                 [int(c) for c in counts])
    plan = plan or devices.DataParallelPlan()
    jit = devices.jit_compile_value(config.jit_compile)
    if plan.replicas > 1 or jit != "auto":
        # Builds under the strategy scope, sets model.jit_compile, scales the batch per replica.
        hypermodel = devices.ScaledHyperModel(hypermodel, plan, jit)
    worker = role is not None and not role.is_chief
    objective, direction = config.objective_for(family)
    oracle = make_oracle(config.tuner, objective=objective, direction=direction,
                         max_trials=config.max_trials, max_epochs=config.max_epochs,
                         seed=config.seed, family=family, min_epochs=config.min_epochs)
    reloading = (run_dir / family / "oracle.json").exists()
    with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's "Reloading Tuner" chatter
        tuner = CVTuner(oracle, hypermodel, data=data, family=family, run_dir=run_dir,
                        max_epochs=config.max_epochs, patience=config.patience,
                        seed=config.seed, progress=progress, budget=budget,
                        distribution_strategy=plan.strategy,
                        tensorboard_dir=tensorboard_dir(config),
                        first_rung=config.first_rung if config.ladder else None,
                        ladder_brackets=config.ladder_brackets,
                        max_trial_share=config.max_trial_share)
    if worker:
        progress.line(f"[{family}] worker {role.tuner_id}: running the trials the chief hands "
                      "out")
    elif reloading:
        s = _family_summary(tuner)
        done = s["trials_completed"] + s["trials_failed"] + s["trials_pruned"]
        best = (f"{objective} {s['best_score']:.4f} (trial {s['best_trial_id']})"
                if s["best_score"] is not None else "none yet")
        progress.line(f"[{family}] resuming: {done} trial(s) done, "
                      f"{max(0, config.max_trials - done)} left, best so far {best}")
    else:
        progress.line(f"[{family}] new search: {config.tuner}, up to {config.max_trials} "
                      f"trial(s) x {config.folds} fold(s), objective {objective} "
                      f"({direction})")
        preflight.describe_tuner(family, config, progress)
    tuner.search(verbose=0)
    preflight.check_refused_out(family, tuner.oracle, config)
    if worker:  # the oracle lives on the chief: summarise this worker's own trials
        summary = distributed.worker_summary(run_dir / family, role.tuner_id)
    else:
        summary = _family_summary(tuner)
    summary["fit_seconds"] = _fit_seconds(run_dir / family)
    if role is not None and role.is_chief:
        served = getattr(tuner.oracle, "cxr_serve_status", "completed")
        if served == "budget_exhausted":
            raise BudgetExhausted(f"time budget of {config.time_budget_min} min spent")
        distributed.mark_family_done(run_dir, family, served)
    return summary


def _runtime(plan) -> dict[str, Any]:
    """What this process's trials mean numerically (search.store.run_folder.check_runtime)."""
    import keras

    return {"backend": keras.backend.backend(), "dtype_policy": keras.config.dtype_policy().name,
            "replicas": int(plan.replicas)}


def _fit_seconds(family_dir: Path) -> float:
    """Sum of the fold ``fit`` wall times recorded in the project (the overhead benchmark)."""
    return float(sum((rf.read_json(p) or {}).get("fit_seconds", 0.0)
                     for p in family_dir.glob("trial_*/fold*.json")))


def run_search_job(config: SearchConfig) -> dict[str, Any]:
    """Runs (or resumes) a search and returns its summary.

    Args:
        config: The search configuration (validated here, before any training).

    Returns:
        ``{"run_dir", "status", "elapsed_s", "families": {family: {...}}}``; status is
        ``completed`` or ``budget_exhausted``.

    Raises:
        SearchError / DataError / SpaceError: a configuration or run-folder problem (exit 2).
        SearchInterrupted: Ctrl-C or SIGTERM; run.json says ``interrupted`` (exit 130/143).
    """
    import data_pipeline
    import spaces
    from search import distributed
    from search.runtime import compat, devices, failpoints

    resolve_min_epochs(resolve_budgets(resolve_weights(validate(config))))
    failpoints.check_env()  # a malformed CXR_TEST_KILL_AT is refused now, not mid-fit
    compat.check_supported()  # KerasTuner/TensorFlow internals (search/runtime/compat.py), named
    role = distributed.resolve_role(config.role, config.oracle, config.tuner_id)
    worker = role is not None and not role.is_chief
    if role is not None:
        distributed.install()
    # tf.function retracing warnings are expected (one new model per fold); keep them out of
    # the user's terminal without importing TensorFlow on other backends.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    space = spaces.load_space(config.space_file)
    synthetic = config.data is None
    config.data = str(Path(config.data or data_pipeline.default_data_dir()).resolve())
    check_two_classes(data_pipeline.discover(config.data).class_names, config.data)
    run_dir = Path(config.run_dir)
    if config.objective == AUTO_OBJECTIVE:  # before run.json records it; a file listing suffices
        n_classes = len(data_pipeline.discover(config.data).class_names)
        preflight.resolve_auto_objectives(config, n_classes, rf.read_json(run_dir / rf.RUN_JSON))
    files_fp = data_pipeline.data_fingerprint(config.data)
    record_cfg = config.to_record(space.to_dict())
    if worker:
        # The chief writes run.json and split.json before it serves, so wait for it first
        # (workers may be launched before the chief; KerasTuner #990).
        pending = [i for i, f in enumerate(config.families)
                   if not distributed.family_done(run_dir, f)]
        if pending:
            first = role.for_family(pending[0])
            distributed.wait_for_oracle(first.host, first.port)
    saved = rf.read_json(run_dir / rf.RUN_JSON)
    if worker:
        if saved is None:
            raise SearchError(f"{run_dir} has no run.json: a worker only joins a search its "
                              "chief has started. Start the chief (--role chief) on this "
                              "--run-dir first.")
        distributed.check_membership(run_dir, role)
    if saved is not None and not config.overwrite:
        rf.check_resume(run_dir, saved, record_cfg, files_fp)
    # After the resume check: a resume with other settings is told so first (an offline
    # weights error would hide the mismatch); still before the lock, the data and any training.
    preflight.check_transfer_weights(config, space)  # WeightsError (a SpaceError)
    resume_cmd = rf.resume_command(config.command or None)

    # The chief holds .lock like a single search (so a second, independent search is refused);
    # each worker holds .lock.<tuner_id> beside it.
    lock_args = ({"role": "worker", "tuner_id": role.tuner_id} if worker else {})
    with RunLock(run_dir, **lock_args) as lock, handle_signals():
        if config.overwrite and saved is not None:
            for child in run_dir.iterdir():
                if not child.name.startswith(".lock"):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            saved = None
        progress = Progress(run_dir / rf.LOG_NAME, quiet=config.quiet)
        if synthetic:
            progress.line(f"note: no --data given, using the built-in SYNTHETIC data in "
                          f"{config.data}; results say nothing about real X-rays.")
        if lock.took_over is not None:
            progress.line(f"note: took over a stale lock ({lock.took_over})")
        if role is not None and role.is_chief:
            # The chief trains nothing: no device set-up (keep its GPU, if any, for workers).
            plan = devices.DataParallelPlan()
            progress.line(f"distributed: chief serving the oracle on {role.address} (port + i "
                          f"for family i); {devices.describe_devices()}")
        else:
            plan, lines = devices.prepare(devices.ScaleOptions(
                config.mixed_precision, config.jit_compile, str(config.data_parallel)))
            for line in lines:
                progress.line(line)
            rf.check_runtime(run_dir, _runtime(plan), new_run=saved is None)
            if worker:
                progress.line(f"distributed: worker {role.tuner_id} of the chief at "
                              f"{role.address}")
        ds, x, y, folds, idx = _prepare_data(config, run_dir, progress,
                                             resuming=saved is not None)
        if saved is None:
            rf.write_json_atomic(run_dir / rf.RUN_JSON, rf.new_run_record(
                config.command, record_cfg, data_fingerprint=ds.fingerprint,
                files_fingerprint=files_fp, class_names=ds.class_names))
        elif not worker:  # max_trials / time budget may have changed: keep the record current
            rf.update_run(run_dir, config=record_cfg, status="running")
        # Content decides on resume (moved data); the decoder hashed every file already.
        rf.record_data_files(run_dir, config.data, ds.file_digests or None)
        if role is not None and role.is_chief:
            distributed.write_membership(run_dir, role, config.families)
        from search.fit.fold_data import FoldData

        data = FoldData(x, y, folds, batches=np.asarray(
            [data_pipeline.acquisition_batch(ds.paths[i]) for i in idx]))
        counts = np.bincount(y, minlength=len(ds.class_names))
        class_names = list(ds.class_names)
        del ds  # the test images are not needed by the search
        tb_dir = tensorboard_dir(config)
        if tb_dir is not None and not worker:
            _write_tensorboard_experiment(tb_dir, config, space, progress)
        started = time.monotonic()
        summary: dict[str, Any] = {"run_dir": str(run_dir), "families": {}}
        status = "failed"
        exhausted: list[str] = []
        try:
            for index, family in enumerate(config.families):
                if worker and not distributed.worker_join_family(run_dir, role, index, family,
                                                                 log=progress.line):
                    continue
                # The budget is per family, so a slow CNN search cannot starve the ANN one.
                budget = TimeBudget(config.time_budget_min)
                if role is not None and role.is_chief and config.time_budget_min is not None:
                    # The chief stops handing out trials at the deadline; each worker's own
                    # budget stops it starting folds.
                    distributed.set_deadline(time.monotonic() + config.time_budget_min * 60.0)
                try:
                    # frozen_heap: fast garbage collections between folds (search.fit.memory).
                    with frozen_heap(), distributed.role_environment(
                            role.for_family(index) if role else None):
                        summary["families"][family] = _run_family(
                            family, config, run_dir, space, data, class_names, counts,
                            progress, budget, plan=plan, role=role)
                except BudgetExhausted as exc:
                    exhausted.append(family)
                    _say(progress, f"{family}: stopped: {exc}.")
            status = "budget_exhausted" if exhausted else "completed"
            if exhausted:
                _say(progress, f"time budget spent for {', '.join(exhausted)}. "
                               f"{_done_text(run_dir, config)} The run is resumable: {resume_cmd}")
        except (SearchInterrupted, KeyboardInterrupt) as exc:
            status = "interrupted"
            _say(progress, f"interrupted ({exc or 'SIGINT'}); finished folds are saved. "
                           f"Resume with: {resume_cmd}")
            raise
        finally:
            if not worker:  # in a distributed search the chief owns the run's status
                rf.update_run(run_dir, status=status)
        summary["status"] = status
        summary["elapsed_s"] = round(time.monotonic() - started, 3)
        if status == "completed":
            progress.line(f"search completed in {format_duration(summary['elapsed_s'])}: "
                          f"{_done_text(run_dir, config)}")
        return summary


def _say(progress: Progress, text: str) -> None:
    """A line the user must see even with --quiet (how to resume): stderr when quiet."""
    progress.line(text)
    if progress.quiet:
        print(text, file=sys.stderr, flush=True)


def _done_text(run_dir: Path, config: SearchConfig) -> str:
    parts = []
    for family in config.families:
        cvs = [rf.read_json(p) or {} for p in sorted((run_dir / family).glob("trial_*/cv.json"))]
        done = sum(c.get("status") == "COMPLETED" for c in cvs)
        failed = sum(c.get("status") == "FAILED" for c in cvs)
        waiting = sum(c.get("status") == "SUSPENDED" for c in cvs)
        # Cut mid-fold (by the budget, a stop): the count adds up to the trials only with them.
        cut = sum(c.get("status") == "RUNNING" for c in cvs)
        pruned = [c for c in cvs if c.get("status") == "PRUNED" and not c.get("censored")]
        censored = sum(c.get("status") == "PRUNED" and bool(c.get("censored")) for c in cvs)
        folds = sum(len(list(p.parent.glob("fold*.json"))) for p in
                    (run_dir / family).glob("trial_*/cv.json"))
        parts.append(f"{family}: {len(cvs)} trial(s): {done} completed, "
                     + (f"{len(pruned)} pruned by the ladder, " if pruned else "")
                     + (f"{censored} stopped for cost (censored), " if censored else "")
                     + (f"{waiting} suspended at a ladder rung (a resume may finish them), "
                        if waiting else "")
                     + (f"{cut} cut mid-fold (a resume goes on from its last finished fold "
                        "or rung), " if cut else "")
                     + f"{failed} failed, {folds} fold(s) trained")
    return "; ".join(parts) + "."


__all__ = ["SearchConfig", "SearchError", "run_search_job"]

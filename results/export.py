"""Exporting each family's winners: a selected ensemble (default) or one retrained model.

``--ensemble select`` (the default) weights the fold ensembles of the configurations Caruana's
greedy selection picks from the search's out-of-fold predictions (``results/selection.py``; at
most ``--ensemble-max-members``, 5 by default; ``ensemble.json`` records members and weights);
with one finished configuration it is that configuration's fold ensemble, and says so.
``--ensemble folds`` averages the winner's k fold models, whose best weights the
search saved, into one model: no retraining. ``--ensemble top N`` averages the fold models of
the N best distinct configurations. ``--ensemble none`` retrains one model as described below.
An ensemble's threshold is chosen on the out-of-fold predictions of its fold models over all
k validation folds (:mod:`results.ensemble`; ``"source": "out_of_fold_early_stopped"``), and
its per-fold spread is recorded in ``threshold.json``. Those fold models were early-stopped and
restored on the same validation images, so the promised sensitivity is optimistic, and
``threshold.json`` says so. A retrained model (``--ensemble none``, ``rank1_single``) gets its
own threshold, chosen on its own scores on its validation slice (``"source": "slice"``); the
fold models' threshold is kept beside it under ``out_of_fold``, for reference only.

Winners are the leaderboard's ranking (:func:`results.leaderboard.best_trials`), so ``export``,
``run`` and the leaderboard always agree on rank 1. A winner is retrained on the whole training
pool (the run's ``train_idx``) minus one patient-grouped, stratified validation slice
(``make_folds(..., k=1, seed)``), for the number of epochs cross-validation chose: the median
best epoch over the folds (``best_epoch`` counts from 1, so it is the epoch count itself; see
:func:`results.model_io.chosen_epochs`), with early stopping on the slice as a guard; its
threshold is chosen on the slice (never the test split: its class mix differs). Because the
slice also drove early stopping, the retrained score and the threshold's promise measured on it
are optimistic; the cross-validation score is the honest estimate. Everything a later
``compare`` or ``predict`` needs is written next to the model.

One winner's export is ``results/winner_export.py``; the run's data is loaded again by
``results/run_data.py``. Fold models are rebuilt by :func:`results.rebuild.fold_hypermodel`
with the search's graph (a transfer backbone keeps ImageNet's, imagenet-only layers included)
and load their own weights, so an export scores films exactly as its fold models did. A
transfer retrain starts from the run's
``--weights``, checked before any training (:func:`check_retrain_weights`; ``--weights PATH``
for a moved file, :func:`with_weights`), and follows the fine-tuning stages the chosen epoch
count had in the search (spaces/transfer.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from results.ensemble import distinct_configurations  # noqa: F401  (re-exported)
from results.errors import ResultsError
from results.model_io import FAMILIES, load_run
from results.retrain_weights import check_retrain_weights, with_weights
from results.run_data import load_run_data, with_data
from results.winner_export import ExportResult, retrain_and_export


# threshold.json "source": where the exported threshold was chosen.


def parse_ensemble(words: list[str] | str | None) -> tuple[str, int]:
    """``--ensemble`` words -> ``(kind, n)``: ``select`` (the default), ``folds``, ``none``, or
    ``top N`` (N >= 2).

    Raises:
        ResultsError: anything else, naming the accepted forms.
    """
    if words is None:
        return "select", 1
    words = words.split() if isinstance(words, str) else list(words)
    if words in (["select"], ["folds"], ["none"]):
        return words[0], 1
    if len(words) == 2 and words[0] == "top" and words[1].isdigit() and int(words[1]) >= 2:
        return "top", int(words[1])
    raise ResultsError(f"--ensemble {' '.join(words)!r} is not understood: use `--ensemble "
                       "select` (greedy ensemble selection over the finished configurations, "
                       "the default), `--ensemble folds` (average the winner's fold models), "
                       "`--ensemble "
                       "top N` with N >= 2 (average the fold models of the N best distinct "
                       "configurations) or `--ensemble none` (retrain one model).")


def export_winners(run_dir: str | Path, *, model: str = "both", top_n: int = 1,
                   target_sensitivity: float = 0.95, verbose: int = 0,
                   progress: bool = True, ensemble: str | list[str] | None = None,
                   with_single: bool = True, data: str | Path | None = None,
                   weights: str | Path | None = None,
                   max_members: int = 5) -> list[ExportResult]:
    """Exports each family's winner(s) (a selected ensemble by default).

    Args:
        run_dir: the run folder (``runs/<name>``).
        model: ``"cnn"``, ``"ann"`` or ``"both"`` (a family without completed trials is skipped
            with a note when ``"both"``).
        top_n: how many trials per family (rank1 .. rankN).
        target_sensitivity: the sensitivity the exported threshold must reach on the slice.
        verbose: Keras fit verbosity.
        progress: print one line per export.
        ensemble: ``"select"`` (default), ``"folds"``, ``"none"`` or ``"top N"`` (see
            :func:`parse_ensemble`); ``select`` and ``top N`` are exported as rank1 only.
        max_members: the most distinct configurations a ``select`` ensemble may hold
            (``--ensemble-max-members``; 1 exports the single best configuration's folds).
        with_single: with an ensemble, also retrain the rank-1 trial as one model into
            ``rank1_single``, so ``compare`` shows single and ensemble side by side.
        data: the run's data folder when it moved since the search (``--data``); default the
            folder run.json records.
        weights: the transfer run's backbone weights file when it moved since the search
            (``--weights``; matched by sha256, see :func:`with_weights`); default the file
            run.json records. Only a retrained model reads it.

    Returns:
        One ExportResult per exported model.

    Raises:
        ResultsError: no run folder, no completed trials, or a bad option.
    """
    run_dir = Path(run_dir)
    if model not in ("cnn", "ann", "transfer", "both"):
        raise ResultsError(f"--model must be cnn, ann, transfer or both; got {model!r}.")
    if top_n < 1:
        raise ResultsError(f"--top-n must be at least 1; got {top_n}.")
    check_max_members(max_members)
    from results.ensemble import family_selection
    from results.leaderboard import best_trials

    kind, n_members = parse_ensemble(ensemble)
    run = with_weights(with_data(load_run(run_dir), data), weights)
    # both: CNN and ANN (noted when missing), plus transfer when the run searched it.
    families = (tuple(f for f in FAMILIES if f in ("cnn", "ann") or (run_dir / f).is_dir())
                if model == "both" else (model,))
    note_live_search(run_dir, "exporting the best trial so far")
    ranked = {f: best_trials(run_dir, f, 10_000 if kind in ("top", "select") else top_n)
              for f in families}
    members = {f: distinct_configurations(r)[:n_members] for f, r in ranked.items()}
    selections: dict[str, Any] = {}
    kinds = {f: kind for f in families}
    if kind == "select":
        for f in families:
            found = family_selection(run_dir, f, run, max_members=max_members) \
                if ranked[f] else None
            if found is None:
                if ranked[f]:
                    print(f"note: {f}: no out-of-fold predictions on disk (the search predates "
                          "them), so --ensemble select falls back to the winner's fold "
                          "ensemble.", file=sys.stderr)
                kinds[f] = "folds"
                continue
            selections[f], members[f] = found
            if selections[f].fallback:
                print(f"note: {f}: {selections[f].fallback}; --ensemble select has nothing "
                      "to choose from yet.", file=sys.stderr)
    plans = {f: (members[f][:1] if kinds[f] in ("top", "select") else r[:top_n])
             for f, r in ranked.items()}
    if not any(plans.values()):
        raise ResultsError(
            f"{run_dir} has no completed {'/'.join(families)} trials to export yet. Run (or "
            f"resume) the search first: `run_search.py search --run-dir {run_dir}`; "
            f"`run_search.py leaderboard --run-dir {run_dir} --all` shows what is there.")
    if len(run["class_names"] if run.get("class_names") else [0, 1]) != 2:
        raise ResultsError("export supports two-class runs only (one sigmoid output and a "
                           f"decision threshold); this run has classes {run['class_names']}.")
    if "transfer" in plans:  # the retrained model's starting weights, before any training
        retrained = (plans["transfer"] if kind == "none" else
                     plans["transfer"][:1] if with_single else [])
        check_retrain_weights(run, retrained, single=kind != "none")
    dataset, split = load_run_data(run_dir, run, progress=progress)
    results = []
    for family in families:
        if not plans[family]:
            print(f"note: no completed {family} trials in {run_dir}; skipping {family}.",
                  file=sys.stderr)
            continue
        for rank, record in enumerate(plans[family], start=1):
            record.setdefault("family", family)
            res = retrain_and_export(run_dir, run, record, rank, dataset,
                                     np.asarray(split.train_idx),
                                     target_sensitivity=target_sensitivity, verbose=verbose,
                                     ensemble=kinds[family], members=members[family],
                                     selection=selections.get(family))
            results.append(res)
            if progress:
                print(format_result(res), flush=True)
            if kind != "none" and with_single and rank == 1:
                res = retrain_and_export(run_dir, run, record, rank, dataset,
                                         np.asarray(split.train_idx),
                                         target_sensitivity=target_sensitivity,
                                         verbose=verbose, ensemble="none", single=True)
                results.append(res)
                if progress:
                    print(format_result(res) + " (single model, for comparison)", flush=True)
    return results


def check_max_members(value: int) -> None:
    """Refuses an ``--ensemble-max-members`` below 1, naming the fix."""
    if not isinstance(value, int) or value < 1:
        raise ResultsError(f"--ensemble-max-members must be a whole number of at least 1; got "
                           f"{value!r}. Use 1 for one configuration (its fold ensemble), or "
                           "the default 5.")


def format_result(r: ExportResult) -> str:
    """One line: the retrained validation score next to the cross-validation score.

    The retrained score is measured on the validation slice that also drove early stopping, so
    it reads optimistic; the line says so. An ensemble shows its fold models' out-of-fold AUC.
    """
    if r.ensemble != "none":
        chosen = ("" if not r.weights else " (" + ", ".join(
            f"trial {t} x {w:.2f}" for t, w in r.weights.items()) + ")")
        return (f"{r.family} rank{r.rank} (trial {r.trial_id}): {r.ensemble} ensemble{chosen}, "
                f"CV mean {r.cv_mean:.4f} ± {r.cv_std:.4f} | out-of-fold AUC "
                f"{r.retrained_score:.4f} | {r.n_params:,} params, threshold {r.threshold:.4f} "
                f"(out-of-fold, early-stopped fold models) -> {r.path}")
    from search.fit.probes import epoch_metric

    return (f"{r.family} rank{r.rank} (trial {r.trial_id}): CV {r.objective} "
            f"{r.cv_mean:.4f} ± {r.cv_std:.4f} | retrained validation "
            f"{epoch_metric(r.objective)} "
            f"{r.retrained_score:.4f} (on the slice that also drove early stopping) | "
            f"{r.epochs_run}/{r.epochs} epochs, {r.n_params:,} params, "
            f"threshold {r.threshold:.4f} (its slice) -> {r.path}")


def note_live_search(run_dir: str | Path, what: str) -> bool:
    """Prints a note to stderr when a search still holds ``run_dir``; returns whether one does.

    Args:
        run_dir: the run folder.
        what: what the caller goes on to do, e.g. ``"exporting the best trial so far"``.
    """
    from results.trials import search_active

    if not search_active(run_dir):
        return False
    print(f"note: a search is still running in {run_dir}; {what} (rerun this command after "
          "the search finishes for its final winners).", file=sys.stderr)
    return True

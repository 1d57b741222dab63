"""The training site's score distribution an export is checked against, and local scores alike.

An exported fold ensemble averages k fold models; an average spreads less than one model, so its
scores on new films are not comparable with the out-of-fold scores its threshold was chosen on.
The comparable quantity is one fold model's score on a film it never trained on. So:

- the reference is the out-of-fold score of every training-pool image (fold k's model(s) on
  fold k's validation images), plus the same on the shortcut probes' shifted copies of them
  (``data_pipeline.shifts``), all with their labels; it is computed once from the run folder and
  cached beside the export (``site_reference.npz``), so later checks need no training data;
- a local film is scored by the model(s) of one fold, assigned by a seeded permutation, so with
  no shift its score is drawn from the same distribution as a reference score.

The fold models are the export's own nested members (named ``trial<id>_fold<k>`` by
``results.ensemble``), so nothing is rebuilt. A retrained single model (``--ensemble none``)
has no out-of-fold distribution of its own and is refused.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from results.errors import ResultsError

REFERENCE_FILE = "site_reference.npz"
_MEMBER = re.compile(r"_fold(\d+)$")
ASSIGN_SEED = 33


def fold_members(model: Any, export_dir: Path | str = "the export") -> list[list[Any]]:
    """The export's fold models grouped by fold: ``members[k]`` are fold k's model(s).

    Raises:
        ResultsError: the model holds no fold models (a retrained single model).
    """
    by_fold: dict[int, list[Any]] = {}
    for layer in getattr(model, "layers", []):
        match = _MEMBER.search(layer.name)
        if match:
            by_fold.setdefault(int(match.group(1)), []).append(layer)
    if not by_fold and _MEMBER.search(getattr(model, "name", "")):
        by_fold[int(_MEMBER.search(model.name).group(1))] = [model]  # one fold: the model itself
    if not by_fold:
        raise ResultsError(
            f"{export_dir} is a retrained single model (--ensemble none), which has no "
            "out-of-fold score distribution to compare a site with. Use the run's fold "
            "ensemble export (the default of `run_search.py export`, exports/<family>/rank1).")
    return [by_fold[k] for k in sorted(by_fold)]


def member_scores(members: list[list[Any]], x: np.ndarray, seed: int = ASSIGN_SEED
                  ) -> np.ndarray:
    """One fold's score per film: film i goes to fold ``perm[i] % k`` (seeded), averaged over
    that fold's models (several for a top-N ensemble), like an out-of-fold score."""
    from search.fit.probes import predict_scores

    k = len(members)
    fold_of = np.random.default_rng(seed).permutation(len(x)) % k
    out = np.full(len(x), np.nan)
    for f in range(k):
        idx = np.flatnonzero(fold_of == f)
        if idx.size:
            out[idx] = np.mean([predict_scores(m, x[idx]) for m in members[f]], axis=0)
    return out


def compute_reference(export_dir: Path, model: Any, metadata: dict[str, Any], *,
                      progress: bool = True, train_data: str | Path | None = None
                      ) -> dict[str, np.ndarray]:
    """Out-of-fold scores of the run's training pool and of its probe-shifted copies.

    ``train_data``: the run's data folder when it moved since the search (as ``export --data``).

    Raises:
        ResultsError: the run folder or its data cannot be found, or the export is not a fold
            ensemble.
    """
    from data_pipeline.shifts import shifted_sets
    from results.ensemble import run_folds
    from results.run_data import load_run_data, with_data
    from results.model_io import load_run
    from results.site.site_files import run_dir_of

    members = fold_members(model, export_dir)
    run_dir = run_dir_of(export_dir, metadata)
    run = with_data(load_run(run_dir), train_data)
    data = (run.get("config") or {}).get("data")
    if data and not Path(data).is_dir():
        raise ResultsError(
            f"the first check of {export_dir} scores the training site's films, from the run's "
            f"data folder {data}, which is not there. Pass --train-data DIR with the run's data "
            "folder (the same files), or run one check where the data is and copy the export "
            f"folder with its {REFERENCE_FILE}.")
    dataset, split = load_run_data(run_dir, run, progress=progress)
    pool = np.asarray(split.train_idx)
    x, y = dataset.x[pool], dataset.y[pool]
    folds = run_folds(run, y, dataset.groups[pool])
    if len(folds) != len(members):
        raise ResultsError(f"{export_dir} holds models of {len(members)} fold(s) but the run "
                           f"{run_dir} has {len(folds)}; re-export it from this run.")
    variants = {"oof": x, **shifted_sets(x)}
    out: dict[str, np.ndarray] = {"y": y.astype(np.int64)}
    from search.fit.probes import predict_scores

    for name, images in variants.items():
        if progress:
            print(f"reference: scoring the training pool ({name}, {len(images)} images)")
        scores = np.full(len(images), np.nan)
        for k, (_, va) in enumerate(folds):
            scores[va] = np.mean([predict_scores(m, images[va]) for m in members[k]], axis=0)
        out[name] = scores
    seen = np.isfinite(out["oof"])
    return {key: value[seen] for key, value in out.items()}


def load_or_compute_reference(export_dir: Path, model: Any, metadata: dict[str, Any], *,
                              progress: bool = True, train_data: str | Path | None = None
                              ) -> dict[str, np.ndarray]:
    """The cached reference of an export, computed and saved (atomically) on first use."""
    path = Path(export_dir) / REFERENCE_FILE
    if path.is_file():
        try:
            with np.load(path) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError) as err:
            print(f"warning: {path} is damaged ({err}); computing it again")
    ref = compute_reference(Path(export_dir), model, metadata, progress=progress,
                            train_data=train_data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".site_reference.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **ref)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ref

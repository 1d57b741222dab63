"""``calibrate`` and ``check``: the IO around the pure rules (files in, records out).

Every refusal (data the loader refuses, other classes than the export's, one class only, films
the export trained on, a single-model export for ``check``) happens before any film is scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from results.errors import ResultsError
from results.model_io import (EXPORT_FILES, check_compatible, check_model_input, load_export,
                              read_json)
from results.site.calibration import calibrate_scores
from results.site.shift_check import check_scores, probe_shift, verdict
from results.site.site_files import (check_site_name, default_site_name, now, refuse_overlap,
                                     training_digests, write_site_check, write_site_threshold)

MIN_CHECK_FILMS = 20


def _metadata(export_dir: Path) -> dict[str, Any]:
    """metadata.json without loading the model; a non-export gets load_export's own message."""
    if not all((export_dir / n).is_file() for n in EXPORT_FILES):
        load_export(export_dir)  # raises the clear "not a finished export" error
    meta = read_json(export_dir / "metadata.json")
    if len(meta.get("class_names") or []) != 2:
        raise ResultsError(f"{export_dir} is not a two-class export; a site threshold needs a "
                           "pneumonia-vs-normal model.")
    return meta


def _overlap(export_dir: Path, meta: dict[str, Any], local: dict[str, str], folder: Path
             ) -> dict[str, Any]:
    """Refuses training films; returns what was checked (recorded in the site file)."""
    digests = training_digests(export_dir, meta)
    if digests is None:
        print(f"warning: the export's run folder has no data_files.json, so {folder} cannot be "
              "checked for films the model was trained on; make sure none are.")
        return {"checked": False}
    train, test = digests
    refuse_overlap(local, train, folder)
    n_test = sum(1 for d in local.values() if d in test)
    if n_test:
        print(f"note: {n_test} film(s) in {folder} are from the training site's held-out test "
              "split: not trained on, but not from a new site either.")
    return {"checked": True, "training_files": len(train), "from_training_test_split": n_test}


def calibrate_site(export_dir: str | Path, data: str | Path, *, floor: float = 0.90,
                   confidence: float = 0.95, name: str | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Scores a labelled local folder with the export and picks the site's operating point.

    Args:
        export_dir: an export folder (``RUN/exports/cnn/rank1``).
        data: the site's labelled films, one folder per class as in training.
        floor: the sensitivity the lower confidence bound must reach.
        confidence: the one-sided confidence of that bound.
        name: the site's name (default: the folder's name).
        progress: print decoding progress.

    Returns:
        :func:`results.site.calibration.calibrate_scores`'s record plus ``site``, ``date``,
        ``data``, ``content_digest``, ``export``, ``overlap_check`` and ``path`` (the site
        file written, or None when the films are too few for the guarantee).

    Raises:
        UserError: any refusal (see the module docstring), before scoring.
    """
    import data_pipeline
    from data_pipeline.content import content_fingerprint
    from search.fit.probes import predict_scores

    export_dir, folder = Path(export_dir), Path(data)
    if not 0.0 < floor < 1.0 or not 0.0 < confidence < 1.0:
        raise ResultsError(f"--min-sensitivity {floor} and --confidence {confidence} must both "
                           "be in (0, 1), e.g. 0.90 and 0.95.")
    name = check_site_name(name or default_site_name(folder))
    meta = _metadata(export_dir)
    dataset = data_pipeline.load_dataset(folder, image_size=int(meta["image_size"]),
                                         color_mode=meta["color_mode"],
                                         positive_class=meta.get("positive_class"),
                                         progress=progress)
    check_compatible(meta, class_names=dataset.class_names, source=str(folder),
                     export=str(export_dir))
    n_pos = int(np.sum(dataset.y == 1))
    if n_pos == 0 or n_pos == dataset.y.size:
        raise ResultsError(f"{folder} holds films of one class only; calibrate needs labelled "
                           f"films of both ({', '.join(meta['class_names'])}), one folder each.")
    local = dict(zip(dataset.paths, dataset.digests))
    overlap = _overlap(export_dir, meta, local, folder)
    export = load_export(export_dir)
    check_model_input(export.model, export.metadata, str(export_dir))
    scores = predict_scores(export.model, dataset.x)
    result = calibrate_scores(dataset.y, scores, floor=floor, confidence=confidence,
                              exported_threshold=float(export.threshold["threshold"]))
    result.update(site=name, date=now(), data=str(folder.resolve()),
                  content_digest=content_fingerprint(local), export=str(export_dir.resolve()),
                  n=int(dataset.y.size), skipped=len(dataset.skipped), overlap_check=overlap,
                  class_names=list(meta["class_names"]), path=None)
    if result["feasible"]:
        point = result["at_threshold"]
        result["counts"] = {k: point[k] for k in ("tp", "fn", "tn", "fp")}
        result["path"] = str(write_site_threshold(export_dir, name, result))
    return result


def check_site(export_dir: str | Path, data: str | Path, *, name: str | None = None,
               alpha: float = 0.05, n_boot: int = 200, progress: bool = True,
               train_data: str | Path | None = None) -> dict[str, Any]:
    """The unlabelled check of a local folder against the export's training-site scores.

    Args:
        export_dir: a fold-ensemble export folder.
        data: image files of the site, any layout (walked recursively; labels are not used).
        name: the site's name (default: the folder's name).
        alpha: warn when the p-value is below this.
        n_boot: bootstrap draws for the p-value.
        progress: print what is being computed.
        train_data: the run's training data folder when it moved since the search; read only
            the first time, to compute the cached reference.

    Returns:
        :func:`results.site.shift_check.check_scores`'s record plus ``verdict``, ``probes``
        (the probes' shifted copies of the reference: distance, sensitivity, specificity),
        ``reference`` (size, operating point at the exported threshold), ``site``, ``date``,
        ``data``, ``unreadable`` and ``path``.
    """
    from data_pipeline.content import content_fingerprint, file_digest
    from results.predict import decode_paths, expand_paths
    from results.site.reference import fold_members, load_or_compute_reference, member_scores

    export_dir, folder = Path(export_dir), Path(data)
    name = check_site_name(name or default_site_name(folder))
    meta = _metadata(export_dir)
    files = expand_paths([folder])
    if len(files) < MIN_CHECK_FILMS:
        raise ResultsError(f"{folder} holds {len(files)} image file(s); the check needs at least "
                           f"{MIN_CHECK_FILMS} films of the site (a few hundred tell more).")
    local = {str(f.relative_to(folder)) if f.is_relative_to(folder) else str(f): file_digest(f)
             for f in files}
    _overlap(export_dir, meta, local, folder)
    x, ok, errors = decode_paths(files, int(meta["image_size"]), meta["color_mode"])
    if len(ok) < MIN_CHECK_FILMS:
        raise ResultsError(f"only {len(ok)} of the {len(files)} files in {folder} are readable "
                           f"images; the check needs at least {MIN_CHECK_FILMS}.")
    export = load_export(export_dir)
    check_model_input(export.model, export.metadata, str(export_dir))
    members = fold_members(export.model, export_dir)
    ref = load_or_compute_reference(export_dir, export.model, export.metadata, progress=progress,
                                    train_data=train_data)
    t = float(export.threshold["threshold"])
    scores = member_scores(members, x)
    result = check_scores(scores, ref["oof"], ref["y"], threshold=t, alpha=alpha,
                          n_boot=n_boot)
    result["verdict"] = verdict(result)
    result["probes"] = {k: probe_shift(ref[k], ref["oof"], ref["y"], t)
                        for k in ("border", "photometric", "geometric") if k in ref}
    pred = ref["oof"] >= t
    result["reference"] = {"n": int(ref["y"].size), "n_positive": int(ref["y"].sum()),
                           "threshold": t,
                           "sensitivity": float(np.mean(pred[ref["y"] == 1])),
                           "specificity": float(np.mean(~pred[ref["y"] == 0]))}
    result.update(site=name, date=now(), data=str(folder.resolve()),
                  content_digest=content_fingerprint(local), export=str(export_dir.resolve()),
                  unreadable=len(errors),
                  rule=(f"fitted-mixture Kolmogorov-Smirnov distance of one fold model's scores "
                        f"to the out-of-fold ones, parametric bootstrap ({n_boot} draws); warn "
                        f"when p < {alpha}"))
    result["path"] = str(write_site_check(export_dir, name, result))
    return result

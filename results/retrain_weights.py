"""The starting weights of a retrained transfer model: where they are and whether they are the run's.

A fold ensemble loads its fold models' own weights; a retrained model (``export --ensemble
none``, ``rank1_single`` beside an ensemble) starts from the run's ``--weights`` (Keras'
ImageNet cache or a file) like the trials it stands for. The run records a file's sha256
(``config.weights_sha256``), so a moved copy is found by content (``export --weights PATH``)
and a replaced file is refused, each in one paragraph before any training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results.errors import ResultsError


def with_weights(run: dict[str, Any], weights: str | Path | None) -> dict[str, Any]:
    """The run record pointed at the backbone weights file ``weights`` (``--weights``).

    For a transfer run whose ``--weights`` file moved after the search: the retrained model
    (``--ensemble none``, ``rank1_single``) starts from that file, which must be the run's by
    content when the run recorded its sha256. Unchanged when ``weights`` is None.

    Raises:
        ResultsError: not a file, a different file, or a run that did not start from a file.
    """
    if weights is None:
        return run
    from spaces.backbones import weights_digest

    cfg = run.get("config") or {}
    path = Path(weights).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ResultsError(f"--weights {path} {what}. Give the backbone weights file the "
                           "search started from (a *.weights.h5 or *_notop.h5 file, or any "
                           "byte-identical copy of it).")
    recorded = cfg.get("weights")
    if recorded in (None, "none"):
        why = ("trained its backbone from scratch (--weights none)" if recorded == "none"
               else "searched no transfer family")
        raise ResultsError(f"--weights {path}: the run {why}, so no model of it starts from a "
                           "weights file. Leave --weights out.")
    digest = weights_digest(path)
    saved = cfg.get("weights_sha256")
    if saved and digest != saved:
        raise ResultsError(
            f"--weights {path} is not the file the search started from ({recorded}): its "
            f"sha256 is {digest[:12]}..., the run recorded {saved[:12]}.... The retrained "
            "model must start from the same backbone weights as the trials it stands for. "
            "Give that file (any byte-identical copy), or skip the retrained model with "
            "--no-single (the fold ensemble needs no weights file).")
    out = dict(run)
    out["config"] = {**cfg, "weights": str(path.resolve()), "weights_sha256": digest}
    return out


def check_retrain_weights(run: dict[str, Any], records: list[dict[str, Any]],
                          single: bool) -> None:
    """Refuses, before any training, a transfer retrain whose starting weights cannot be had.

    The fold ensemble loads its fold models' own weights; a retrained model (``--ensemble
    none``, or ``rank1_single`` beside an ensemble) starts from the run's ``--weights``: Keras'
    ImageNet cache or a file, which must still exist and be the run's by content (sha256).

    Raises:
        ResultsError: one paragraph naming the file, the rule and the ways out.
    """
    from spaces.backbones import WeightsError, check_weights, weights_digest
    from spaces.transfer import resolve_weights

    cfg = run.get("config") or {}
    weights = resolve_weights(cfg.get("weights"))
    if weights is None or not records:
        return
    out = ("skip the retrained model with --no-single (the fold ensemble needs no weights "
           "file)" if single else "export the fold ensemble instead (--ensemble folds "
           "--no-single), which needs no weights file")
    if weights != "imagenet":
        path, saved = Path(weights), cfg.get("weights_sha256")
        if not path.is_file():
            raise ResultsError(
                f"the transfer model is retrained from the backbone weights the search started "
                f"from, {path}, which does not exist any more. Point export at the file where "
                f"it is now with --weights PATH (matched by content"
                f"{f', sha256 {saved[:12]}...' if saved else ''}: any byte-identical copy is "
                f"accepted), or {out}.")
        if saved and weights_digest(path) != saved:
            raise ResultsError(
                f"{path} is not the file the search started from: its sha256 is "
                f"{weights_digest(path)[:12]}..., the run recorded {saved[:12]}.... The "
                "retrained model must start from the same backbone weights as the trials it "
                f"stands for. Give the run's file with --weights PATH, or {out}.")
    keys = sorted({str((r.get("hyperparameters") or {}).get("backbone") or "mobilenetv3small")
                   for r in records})
    try:
        check_weights(weights, keys)
    except WeightsError as err:
        raise ResultsError(f"{err} (export retrains the transfer model from these weights: "
                           f"give them with --weights PATH, or {out}.)") from None

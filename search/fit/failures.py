"""Trial failures: NaN loss, out-of-memory and over-budget models end one trial, not the search.

A failed trial raises KerasTuner's ``FailedTrialError`` (the oracle records it as FAILED and the
search goes on). ``MAX_CONSECUTIVE_FAILURES`` failures in a row stop the search with a
``SearchError``: something is wrong with the data or the space, not with one configuration.
Out-of-memory is recognised by the exception's class name and message, so no backend is
imported to check for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from keras_tuner.errors import FailedTrialError

from search.errors import SearchError

MAX_CONSECUTIVE_FAILURES = 3
# Over-budget configurations are refused before training, in milliseconds, and a wide space
# draws several in a row by chance; they only stop the search after this many in a row.
MAX_CONSECUTIVE_REJECTIONS = 20
OVER_BUDGET = "OVER_BUDGET"


def is_over_budget(reason: str | None) -> bool:
    """True for the spaces' parameter-budget refusal (a trial that never trained)."""
    return bool(reason) and "parameters, over the limit of" in reason

_OOM_NAMES = {"ResourceExhaustedError", "OutOfMemoryError", "MemoryError"}
_OOM_TEXT = ("RESOURCE_EXHAUSTED", "out of memory", "OOM when allocating")


def is_oom(exc: BaseException) -> bool:
    """True for TF ``ResourceExhaustedError``, JAX ``XlaRuntimeError: RESOURCE_EXHAUSTED``,
    torch CUDA OOM or Python ``MemoryError``, following the ``__cause__`` chain."""
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__name__ in _OOM_NAMES or any(t in str(exc) for t in _OOM_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False


# A ``{...}`` dump of hyperparameter values (cv.json keeps them under "hyperparameters").
_DICT_DUMP = re.compile(r",?\s*\{[^{}]*\}")
# A parenthesised aside, one nesting level deep: "(input (16, 16, 1))", "(fewer layers, ...)".
_ASIDE = re.compile(r"\s*\((?:[^()]|\([^()]*\))*\)")
_FIX_WORDS = ("Raise", "Lower", "raise", "lower", "--", "narrow", "check", "Check")


def compact_reason(text: str) -> str:
    """``text`` without raw dict dumps, on one line (what cv.json and the progress show)."""
    text = " ".join(_DICT_DUMP.sub("", text).split())
    return text.replace(" ()", "").replace("()", "")


def short_reason(reason: str | None, limit: int = 120) -> str:
    """A reason cut to about ``limit`` characters that keeps the numbers and the fix.

    A plain prefix cut stopped at "over the limit of 2,...": here the parenthesised asides go
    first, then the middle sentences, so the first sentence (what and how much) and the last
    one (the fix) survive; only what is still too long is cut at the end.
    """
    if not reason:
        return ""
    text = compact_reason(reason)
    if len(text) <= limit:
        return text
    text = " ".join(_ASIDE.sub("", text).split())
    if len(text) > limit:
        sentences = re.split(r"(?<=[.:;])\s+", text)
        if len(sentences) > 1 and any(w in sentences[-1] for w in _FIX_WORDS):
            text = f"{sentences[0]} ... {sentences[-1]}"
    if len(text) <= limit:
        return text
    # Cut at a word boundary: "could no..." reads as a different word.
    cut = text[:limit - 3]
    if " " in cut and not text[limit - 3].isspace():
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "..."


def failure_reason(exc: BaseException) -> str:
    """A one-line reason for cv.json: ``out_of_memory: ...``, or the error's own message.

    Dict dumps are dropped (cv.json records the hyperparameters beside the reason) so the
    length limit keeps the fix at the end of the message instead of half a dict.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = compact_reason(text)
    if is_oom(exc):
        return f"out_of_memory: {short_reason(text, 300)}"
    if isinstance(exc, FailedTrialError):
        return short_reason(text, 500)
    return f"{type(exc).__name__}: {short_reason(text, 300)}"


def check_finite(history: Mapping[str, Sequence[float]], fold: int) -> None:
    """Raises FailedTrialError when a loss went NaN/inf (TerminateOnNaN stopped the fit)."""
    for key in ("loss", "val_loss"):
        for epoch, value in enumerate(history.get(key, [])):
            if value is None or not math.isfinite(float(value)):
                raise FailedTrialError(f"nan_loss: {key} became {value} at epoch {epoch + 1} "
                                       f"of fold {fold}")


def check_consecutive(statuses: Sequence[str], limit: int = MAX_CONSECUTIVE_FAILURES,
                      last_reason: str | None = None,
                      rejected_limit: int | None = None) -> None:
    """Raises SearchError when the trials since the last completed one failed too often.

    Args:
        statuses: Statuses of the ended trials in end order: ``COMPLETED``, ``FAILED`` or
            ``OVER_BUDGET`` (refused by the parameter budget before any training).
        limit: How many real failures (OOM, NaN, errors) in a row stop the search.
        last_reason: The latest failure's reason, quoted in the message.
        rejected_limit: How many failures of any kind, over-budget refusals included, in a row
            stop the search (default :data:`MAX_CONSECUTIVE_REJECTIONS`).
    """
    rejected_limit = MAX_CONSECUTIVE_REJECTIONS if rejected_limit is None else rejected_limit
    run: list[str] = []
    for status in reversed(list(statuses)):
        if status == "COMPLETED":
            break
        run.append(status)
    failed = sum(s == "FAILED" for s in run)
    if failed >= limit or len(run) >= rejected_limit:
        n = failed if failed >= limit else len(run)
        raise SearchError(
            f"{n} trials in a row failed (last reason: {last_reason}). The search stopped "
            "because the problem is likely the data, the space or the machine, not one "
            "configuration: check the reasons in the trials' cv.json, lower --image-size or "
            "raise --max-params for over-budget models, or narrow the space (--space FILE); "
            "then rerun the same command to resume."
        )

"""Failed-trial reasons: the numbers and the fix survive the length limits, no dict dumps."""

from __future__ import annotations

import io

from keras_tuner.errors import FailedTrialError

from search.fit.failures import failure_reason, short_reason
from search.watch.progress import Progress

# What spaces/common.py raises for an over-budget model (architecture dict included).
OVER_BUDGET = ("ann model has 3,000,000 parameters, over the limit of 2,000,000 (input (16, 16, "
               "1), {'dense_layers': 2, 'dense_units': 64, 'dense_hierarchy': 'constant', "
               "'dense_dropout': 'none', 'dense_batch_norm': 'none', 'activation': 'relu', "
               "'dense_l2': 0.0}). Raise --max-params or narrow the space (fewer layers, smaller "
               "base width, global_average head).")


def test_cv_reason_keeps_the_fix_and_drops_the_dict() -> None:
    reason = failure_reason(FailedTrialError(OVER_BUDGET))
    assert "{" not in reason and "'dense_units'" not in reason
    assert "over the limit of 2,000,000" in reason and "Raise --max-params" in reason
    assert reason.endswith("global_average head).")


def test_progress_line_keeps_the_numbers_and_the_fix(tmp_path) -> None:
    p = Progress(tmp_path / "search.log", quiet=False, stream=io.StringIO())
    text = p.trial_line(family="ann", trial_id="0001", done=1, total=2, status="FAILED",
                        objective="val_auc", fold_scores=[], mean=None, std=None, best=None,
                        best_id=None, diagnosis=None,
                        reason=failure_reason(FailedTrialError(OVER_BUDGET)))
    assert "3,000,000 parameters, over the limit of 2,000,000" in text
    assert "Raise --max-params" in text and "{" not in text and "..." not in text


def test_short_reason_of_a_gflops_refusal_and_of_plain_text() -> None:
    gflops = ("cnn model needs 12.50 GFLOPs per image, over the limit of 1 (input (64, 64, 1), "
              "{'conv_blocks': 5, 'conv_filters': 64}): it would train for a very long time. "
              "Raise --max-gflops or narrow the space (fewer or narrower blocks at full "
              "resolution, no decreasing filter hierarchy).")
    short = short_reason(gflops)
    assert "12.50 GFLOPs" in short and "limit of 1" in short and "--max-gflops" in short
    assert len(short) <= 120 and "{" not in short
    assert short_reason("nan_loss: val_loss became nan at epoch 3 of fold 1") == \
        "nan_loss: val_loss became nan at epoch 3 of fold 1"
    assert short_reason("x" * 300, 50) == "x" * 47 + "..."


def test_short_reason_never_cuts_a_word() -> None:
    text = ("ValueError: the layer could not be built because its input shape was unknown "
            "when the backbone was created without a fixed input size anywhere")
    short = short_reason(text, 40)
    assert short.endswith("...") and len(short) <= 40
    kept = short[:-3].split()
    assert all(word in text.split() for word in kept), short

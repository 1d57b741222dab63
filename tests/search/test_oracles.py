"""The first trial of every search is the space's defaults (the notes' basic model)."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from search.oracles import default_values, make_oracle
from spaces import CNNHyperModel


def _declared() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    CNNHyperModel(input_shape=(16, 16, 1)).declare_hyperparameters(hp)
    return hp


@pytest.mark.parametrize("tuner", ["hyperband", "random", "bayesian"])
def test_first_trial_is_the_basic_model_then_random(tuner, tmp_path):
    oracle = make_oracle(tuner, objective="val_auc", direction="max", max_trials=5, max_epochs=4,
                         seed=1, family="cnn")
    oracle.hyperparameters = _declared()
    oracle._set_project_dir(str(tmp_path), "p")
    first = oracle.create_trial("t0").hyperparameters.values
    second = oracle.create_trial("t1").hyperparameters.values
    strip = lambda v: {k: x for k, x in v.items() if not k.startswith("tuner/")}  # noqa: E731
    base = kt.HyperParameters()
    CNNHyperModel(input_shape=(16, 16, 1)).declare_hyperparameters(base)
    defaults = {k: v for k, v in base.values.items() if base.is_active(k)}
    assert strip(first) == defaults == default_values(_declared())
    assert (first["conv_blocks"], first["conv_filters"], first["dense_layers"]) == (2, 32, 1)
    assert strip(second) != defaults

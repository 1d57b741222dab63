"""fit() applies the fit-time hyperparameters; the parameter budget; other backends."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import SHAPE, sample_hps

from spaces import ANNHyperModel, CNNHyperModel, SpaceError

ROOT = Path(__file__).resolve().parents[2]


class Spy(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.lrs, self.epochs = [], []

    def on_epoch_end(self, epoch, logs=None):  # after the scheduler set the rate
        self.epochs.append(epoch)
        self.lrs.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_fit_applies_schedule_augmentation_and_class_weights():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, *SHAPE), dtype=np.uint8)
    y = np.array([0, 1] * 6)
    hm = ANNHyperModel(SHAPE, class_counts=[6, 6])
    hp = kt.HyperParameters()
    for name, value in {"lr_schedule": "exponential", "augmentation": True,
                        "class_weights": True, "batch_size": 16, "dense_units": 16}.items():
        hp.Fixed(name, value)
    hp.Fixed("lr_decay_epochs", 10)
    hp.Fixed("augmentation_strength", 0.5)
    model = hm.build(hp)
    spy = Spy()
    history = hm.fit(hp, model, x, y, validation_data=(x[:4], y[:4]), epochs=3, initial_epoch=2,
                     callbacks=[spy], seed=1)
    assert spy.epochs == [2]  # resumed at epoch 2: the schedule sees the absolute epoch
    assert np.isclose(spy.lrs[0], 1e-3 * 0.1 ** (2 / 10), rtol=1e-5)
    assert {"loss", "val_loss", "val_auc", "val_pr_auc", "val_recall"} <= set(history.history)
    with pytest.raises(TypeError, match="batch_size"):
        hm.fit(hp, model, x, y, validation_data=(x, y), epochs=1, batch_size=8)



def test_fit_feeds_keras_the_arrays_with_class_weights_and_a_seeded_order():
    from spaces.common import BaseHyperModel

    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    y = np.array([0] * 8 + [1] * 2)
    values = {"batch_size": 4, "class_weights": True}
    train, val = BaseHyperModel.fit_inputs(values, x, y, (x[:3], y[:3]), seed=3, kwargs={})
    # The uint8 images go to Keras' array adapter as they are (no float copy, no generator).
    assert train["x"].dtype == np.uint8 and train["shuffle"] and train["batch_size"] == 4
    assert np.allclose(train["sample_weight"], [10 / 16] * 8 + [10 / 4] * 2)
    assert train["validation_batch_size"] == 4 and val[1].dtype == np.float32
    values["class_weights"] = False
    assert "sample_weight" not in BaseHyperModel.fit_inputs(values, x, y, None, None, {})[0]

    def first_epoch_losses(seed):
        # One image per batch and distinct images: the running loss after each step depends on
        # the order Keras fed them, so equal sequences mean the same order.
        hm = ANNHyperModel((1, 1, 1), class_counts=[5, 5])
        hp = kt.HyperParameters()
        hp.values.update({"batch_size": 1, "dense_units": 16, "dense_layers": 1})
        keras.utils.set_random_seed(0)
        model = hm.build(hp)
        seen = []

        class Losses(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.append(round(float(logs["loss"]), 5))

        hm.fit(hp, model, x, np.arange(10) % 2, validation_data=None, epochs=1,
               callbacks=[Losses()], seed=seed)
        return seen

    assert first_epoch_losses(1) == first_epoch_losses(1)
    assert first_epoch_losses(1) != first_epoch_losses(2)

def test_budget_rejects_big_model():
    hm = ANNHyperModel(SHAPE, max_params=10_000)
    with pytest.raises(kt.errors.FailedTrialError, match=r"over the limit of 10,000.*--max-params"):
        hm.build(kt.HyperParameters())


@pytest.mark.parametrize("cls", [CNNHyperModel, ANNHyperModel], ids=["cnn", "ann"])
@pytest.mark.parametrize("shape,classes", [((16, 16, 1), 2), ((15, 15, 3), 3)],
                         ids=["16px-gray-2", "15px-rgb-3"])
def test_count_params_matches_built_model(cls, shape, classes):
    # The budget check runs on this count before any layer exists, so it must be exact: odd
    # sizes exercise the rounding of "same" pooling, three classes a softmax output.
    hm = cls(shape, num_classes=classes, class_counts=[5] * classes, max_params=3_000_000)
    built = 0
    for seed in range(12):
        hp = sample_hps(hm, seed)
        counted = hm.count_params(hp)
        if counted > hm.max_params:  # refused with the count, before building
            with pytest.raises(kt.errors.FailedTrialError, match=f"{counted:,} parameters"):
                hm.build(hp)
            continue
        model = hm.build(hp)
        assert counted == model.count_params(), hp.values
        built += 1
        del model
        keras.backend.clear_session()
    assert built >= 6


def test_budget_refuses_before_building(monkeypatch):
    hm = ANNHyperModel((64, 64, 1), max_params=1_000_000)
    hp = kt.HyperParameters()
    hp.Fixed("dense_layers", 6)
    hp.Fixed("dense_units", 1024)
    hp.Fixed("dense_hierarchy", "constant")

    def no_layers(*args, **kwargs):
        raise AssertionError("an over-budget model must be refused before any layer is built")

    monkeypatch.setattr(keras, "Input", no_layers)
    with pytest.raises(kt.errors.FailedTrialError, match=r"9,444,353 parameters, over the limit"):
        hm.build(hp)


@pytest.mark.parametrize("kwargs,match", [
    ({"input_shape": (16, 16)}, "input_shape"), ({"input_shape": (16, 16, 2)}, "channels"),
    ({"num_classes": 1}, "num_classes"), ({"class_counts": [3]}, "class_counts"),
    ({"class_counts": [0, 4]}, "class_counts"), ({"max_params": 0}, "max_params"),
])
def test_init_validates_fixed_facts(kwargs, match):
    args = {"input_shape": SHAPE, **kwargs}
    with pytest.raises(SpaceError, match=match):
        CNNHyperModel(**args)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed in this environment (CI adds a jax job)")
def test_build_under_jax_backend():
    code = ("import keras_tuner as kt, keras; from spaces import HYPERMODELS\n"
            "assert keras.backend.backend() == 'jax'\n"
            "for f, M in HYPERMODELS.items():\n"
            "    hp = kt.HyperParameters(); hp.Fixed('output_bias', True); hp.Fixed('l2', True)\n"
            # No download in tests: the transfer family's backbone is built from scratch.
            "    kw = {'weights': None} if f == 'transfer' else {}\n"
            "    m = M((16, 16, 1), class_counts=[3, 5], **kw).build(hp)\n"
            "    m.predict(keras.ops.zeros((2, 16, 16, 1)), verbose=0)\n")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

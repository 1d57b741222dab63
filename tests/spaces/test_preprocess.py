"""Crop and normalisation layers inside the model: shapes, values, save/reload, defaults."""

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

import spaces
from spaces.preprocess import _layers

ROOT = Path(__file__).resolve().parents[2]


def _equalize_reference(img: np.ndarray) -> np.ndarray:
    levels = np.round(img.ravel() * 255).astype(int)
    hist = np.bincount(levels, minlength=256)
    cdf = hist.cumsum()
    cmin = cdf[hist > 0][0]
    return ((cdf[levels] - cmin) / (levels.size - cmin)).reshape(img.shape)


def test_histogram_equalization_matches_the_textbook_mapping():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 16, 16, 1)).astype("float32") / 255.0
    x[0] *= 0.3  # an under-exposed film: equalised, it spans the full range
    out = np.asarray(_layers()["HistogramEqualization"]()(x))
    for i in range(len(x)):
        np.testing.assert_allclose(out[i], _equalize_reference(x[i]), atol=1e-6)
    assert out[0].min() == 0.0 and out[0].max() == pytest.approx(1.0)


def test_fast_equalization_gives_the_reference_pixels_in_a_compiled_model():
    """The scatter-add histogram (issue 29) maps every pixel exactly as the textbook mapping,
    in graph mode (predict), for RGB films, a constant film and a batch that is not a multiple
    of predict's batch size."""
    import keras

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (5, 12, 12, 3)).astype("float32") / 255.0
    x[1] = 0.5  # constant: every pixel maps to 0 (n - cdf_min is 0, the floor of 1 applies)
    x[2] = np.clip(x[2] * 0.2 + 0.4, 0, 1)  # low contrast
    inp = keras.Input((12, 12, 3))
    model = keras.Model(inp, _layers()["HistogramEqualization"]()(inp))
    out = model.predict(x, batch_size=2, verbose=0)
    for i in (0, 2, 3, 4):
        np.testing.assert_allclose(out[i], _equalize_reference(x[i]), atol=1e-6)
    assert np.all(out[1] == 0.0)


def test_per_image_standardization_removes_exposure():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.0, 0.6, (1, 16, 16, 1)).astype("float32")
    x = np.concatenate([base, base * 1.5 + 0.1])  # the same film, brighter and more contrast
    out = np.asarray(_layers()["PerImageStandardization"]()(x))
    np.testing.assert_allclose(out[0], out[1], atol=1e-4)
    assert abs(out[0].mean()) < 1e-5 and out[0].std() == pytest.approx(1.0, abs=1e-3)


def test_defaults_add_no_preprocessing_layer():
    model = spaces.CNNHyperModel((32, 32, 1)).build(kt.HyperParameters())
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["image", "rescale", "block1_conv1"]


@pytest.mark.parametrize("family", ["cnn", "ann"])
def test_crop_and_normalisation_build_count_save_and_reload(tmp_path, family):
    hm = spaces.HYPERMODELS[family]((32, 32, 1))
    hp = kt.HyperParameters()
    hp.values.update(border_crop=0.15, intensity_norm="equalize")
    model = hm.build(hp)
    names = [layer.name for layer in model.layers]
    assert names[1:5] == ["rescale", "border_crop", "border_crop_resize", "intensity_norm"]
    assert model.get_layer("border_crop").output.shape[1:3] == (22, 22)  # 32 * 0.7, rounded
    assert model.get_layer("border_crop_resize").output.shape[1:3] == (32, 32)
    assert model.count_params() == hm.count_params(hp)
    x = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), again.predict(x, verbose=0),
                               atol=1e-6)


def test_border_crop_makes_the_model_blind_to_the_border():
    hm = spaces.CNNHyperModel((32, 32, 1))
    hp = kt.HyperParameters()
    hp.values.update(border_crop=0.15)
    model = hm.build(hp)
    x = np.full((1, 32, 32, 1), 100.0, dtype="float32")
    framed = x.copy()
    framed[:, :3], framed[:, -3:], framed[:, :, :3], framed[:, :, -3:] = 0, 0, 0, 0
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(framed, verbose=0),
                               atol=1e-6)


def _run_python(code: str, backend: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_an_export_with_custom_layers_loads_in_a_fresh_process(tmp_path):
    # In a new process nothing has built the layers yet: load_export must register them.
    import json

    hm = spaces.CNNHyperModel((16, 16, 1))
    for norm in ("per_image", "equalize"):
        hp = kt.HyperParameters()
        hp.values.update(border_crop=0.1, intensity_norm=norm)
        out = tmp_path / norm
        out.mkdir()
        hm.build(hp).save(out / "model.keras")
        for name in ("hyperparameters.json", "threshold.json", "metadata.json", "history.json"):
            (out / name).write_text(json.dumps({}))
    code = ("from results.model_io import load_export\n"
            f"for p in ({str(tmp_path / 'per_image')!r}, {str(tmp_path / 'equalize')!r}):\n"
            "    load_export(p)\n"
            "print('ok')\n")
    done = _run_python(code)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
    # Without the registration Keras cannot find the layers: it is what makes the load work.
    bare = _run_python("import keras\n"
                       f"keras.saving.load_model({str(tmp_path / 'equalize' / 'model.keras')!r})")
    assert bare.returncode != 0 and "HistogramEqualization" in bare.stderr


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed (./test.sh installs TensorFlow only; CI adds "
                           "requirements-jax.txt)")
def test_preprocessing_and_augmentation_layers_train_under_jax():
    code = ("import keras, numpy as np, keras_tuner as kt, spaces\n"
            "assert keras.backend.backend() == 'jax'\n"
            "hm = spaces.CNNHyperModel((16, 16, 1))\n"
            "for norm in ('per_image', 'equalize'):\n"
            "    hp = kt.HyperParameters(); hp.values.update(border_crop=0.15, intensity_norm=norm,"
            " augmentation=True, augmentation_strength=1.0, augmentation_ranges='wide')\n"
            "    m = hm.build(hp)\n"
            "    x = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1)).astype('float32')\n"
            "    m.fit(x, np.arange(8) % 2, epochs=1, verbose=0)\n"
            "    assert np.isfinite(m.predict(x, verbose=0)).all()\n"
            "print('ok')\n")
    done = _run_python(code, backend="jax")
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_augmentation_is_the_models_first_layers_and_inactive_at_inference():
    import data_pipeline

    hm = spaces.CNNHyperModel((32, 32, 1))
    hp = kt.HyperParameters()
    hp.values.update(augmentation=True, augmentation_strength=1.0)
    keras.utils.set_random_seed(3)
    model = hm.build(hp)
    aug = model.layers[1]
    assert aug.name.startswith("augmentation") and model.layers[2].name == "rescale"
    x = np.random.default_rng(4).integers(0, 256, (64, 32, 32, 1)).astype("float32")
    # Inference: identity, so predictions are deterministic.
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(x, verbose=0))
    # Training: the same distribution as the former per-batch path (the same layers, eagerly).
    inside = np.asarray(aug(x, training=True))
    eager = np.asarray(data_pipeline.make_augmentation(1.0, 5)(x, training=True))
    assert not np.allclose(inside, x)
    for stat in (np.mean, np.std):
        assert stat(inside) == pytest.approx(stat(eager), rel=0.15)
    assert np.mean(np.abs(inside - x)) == pytest.approx(np.mean(np.abs(eager - x)), rel=0.25)
    # The parameter count and the exported model (no random layer) are unchanged by it.
    assert model.count_params() == hm.count_params(hp)
    hm.with_augmentation = False
    plain = hm.build(hp)
    assert not any(layer.name.startswith("augmentation") for layer in plain.layers)
    assert plain.count_params() == model.count_params()


def test_batch_norm_layers_use_the_measured_momentum():
    """The CNN's and ANN's batch norm use momentum 0.9 (spaces.common.BN_MOMENTUM), the prior
    that removed the slow start at Keras' 0.99 on the shared data (benchmarks/RESULTS.md,
    "The ladder"); the transfer family keeps its backbones' own layers."""
    import keras_tuner as kt

    for cls, key in ((spaces.CNNHyperModel, "conv_batch_norm"),
                     (spaces.ANNHyperModel, "dense_batch_norm")):
        hp = kt.HyperParameters()
        hp.values.update({key: "after_activation"})
        model = cls((16, 16, 1)).build(hp)
        momenta = {layer.momentum for layer in model.layers if "bn" in layer.name}
        assert momenta == {0.9}, cls.__name__

"""ArrayBatches, augmentation, class weights and initial bias."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from data_pipeline import DataError, class_weights, initial_bias


def test_class_weights_and_bias():
    y = np.array([0] * 25 + [1] * 75)
    w = class_weights(y)
    assert w == pytest.approx({0: 100 / 50, 1: 100 / 150})
    assert sum(w[c] * n for c, n in ((0, 25), (1, 75))) == pytest.approx(100)
    assert initial_bias(y) == pytest.approx(math.log(3))
    assert class_weights(np.array([0, 1, 2, 2])) == pytest.approx({0: 4 / 3, 1: 4 / 3, 2: 2 / 3})
    with pytest.raises(ValueError):
        initial_bias(np.array([1, 1, 1]))
    with pytest.raises(ValueError):
        initial_bias(np.array([0, 1, 2]))


def test_import_is_keras_free():
    import subprocess

    code = "import sys, data_pipeline; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_array_batches(synthetic_dataset):
    import keras

    from data_pipeline import ArrayBatches

    x, y = synthetic_dataset.x, synthetic_dataset.y
    b = ArrayBatches(x, y, 16)
    assert isinstance(b, keras.utils.PyDataset) and len(b) == math.ceil(len(y) / 16)
    xb, yb = b[0]
    assert xb.dtype == np.float32 and xb.shape == (16, 32, 32, 1) and xb.max() > 1  # raw 0..255
    assert np.array_equal(xb, x[:16].astype(np.float32)) and np.array_equal(yb, y[:16])
    last = b[len(b) - 1]
    assert len(last[0]) == len(y) - 16 * (len(b) - 1)
    with pytest.raises(IndexError):
        b[len(b)]

    w = class_weights(y)
    sb = ArrayBatches(x, y, 8, shuffle=True, seed=3, class_weight=w)
    seen = []
    for i in range(len(sb)):
        xb, yb, sw = sb[i]
        assert np.allclose(sw, [w[int(v)] for v in yb])
        seen.append(yb)
    assert sum(len(s) for s in seen) == len(y)
    order1 = sb._order.copy()
    sb.on_epoch_end()
    assert not np.array_equal(order1, sb._order)
    same = ArrayBatches(x, y, 8, shuffle=True, seed=3)
    assert np.array_equal(same._order, order1)


def test_augmentation(synthetic_dataset):
    from data_pipeline import ArrayBatches, make_augmentation

    x, y = synthetic_dataset.x[:8], synthetic_dataset.y[:8]
    aug = make_augmentation(0.5, seed=1)
    names = [type(layer).__name__ for layer in aug.layers]
    assert names == ["RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
                     "RandomBrightness"]  # no flip by default
    assert "RandomFlip" in [type(layer).__name__ for layer in make_augmentation(1.0, flip=True).layers]
    xb, yb = ArrayBatches(x, y, 8, augment=aug)[0]
    assert xb.shape == x.shape and xb.dtype == np.float32 and isinstance(xb, np.ndarray)
    assert not np.allclose(xb, x) and 0 <= xb.min() and xb.max() <= 255.5
    plain, _ = ArrayBatches(x, y, 8)[0]
    assert np.array_equal(plain, x.astype(np.float32))
    for bad in (0, -0.1, 1.5, True):
        with pytest.raises(DataError, match="strength"):
            make_augmentation(bad)


def test_fit_on_batches(synthetic_dataset):
    import keras

    from data_pipeline import ArrayBatches, make_augmentation

    x, y = synthetic_dataset.x, synthetic_dataset.y
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    hist = model.fit(ArrayBatches(x, y, 16, shuffle=True, seed=0, augment=make_augmentation(0.3, 0),
                                  class_weight=class_weights(y)), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_batches_on_other_backends(backend, tmp_path):
    """Augmented batches under KERAS_BACKEND=jax/torch, without importing TensorFlow."""
    import importlib.util
    import os
    import subprocess

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed in this environment")
    code = (
        "import sys, numpy as np\n"
        "class Block:  # behave as if TensorFlow were not installed\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'tf_keras'):\n"
        "            raise ImportError('TensorFlow blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from data_pipeline import ArrayBatches, make_augmentation\n"
        "x = np.random.default_rng(0).integers(0, 255, (10, 16, 16, 1), dtype=np.uint8)\n"
        "xb, yb, sw = ArrayBatches(x, np.arange(10) % 2, 4, augment=make_augmentation(0.5, 1),\n"
        "                          class_weight={0: 2.0, 1: 1.0})[0]\n"
        "assert type(xb) is np.ndarray and xb.shape == (4, 16, 16, 1) and xb.dtype == np.float32\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "KERAS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]), timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_wide_ranges_reach_the_notebooks_and_mild_stays_the_low_end():
    from data_pipeline import DataError, make_augmentation

    wide = {type(layer).__name__: layer for layer in make_augmentation(1.0, 0, ranges="wide").layers}
    mild = {type(layer).__name__: layer for layer in make_augmentation(1.0, 0).layers}
    assert "RandomShear" in wide and "RandomShear" not in mild
    rot = wide["RandomRotation"].factor
    assert max(abs(f) for f in np.ravel(rot)) * 360 == pytest.approx(40.0)
    assert max(np.ravel(mild["RandomRotation"].factor)) * 360 == pytest.approx(10.8)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 1)).astype(np.float32)
    out = np.asarray(make_augmentation(0.5, 0, ranges="wide")(x, training=True))
    assert out.shape == x.shape and not np.allclose(out, x)
    with pytest.raises(DataError, match="ranges"):
        make_augmentation(1.0, 0, ranges="huge")

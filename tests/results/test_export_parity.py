"""Export parity: the exported model computes what the search's fold model computed.

For every transfer backbone, and for the CNN and ANN families: a fold model is built as the
search builds it (augmentation on; a transfer backbone with ``weights="imagenet"``, so Keras
builds its real ImageNet graph, imagenet-only layers included), its weights are saved as a
fold's, and the export's code rebuilds it (:func:`results.rebuild.fold_hypermodel`,
:func:`results.ensemble.load_fold_models`), saves it as ``model.keras`` and loads it back. Both
must give the same scores on the same films.

Offline: Keras' download (``keras.src.utils.file_utils.get_file``, which every
``keras.applications`` constructor calls for ``weights="imagenet"``) is replaced by a file of
random weights saved from Keras' own ``weights=None`` graph (the imagenet-only layers hold no
weights, so it loads into the ImageNet graph).
"""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest
from keras.src.utils import file_utils

import spaces
from results.ensemble import average_models, load_fold_models
from results.rebuild import fold_hypermodel
from search.fit.fold_fit import fold_weights
from spaces import backbones as bb
from spaces.transfer import TransferHyperModel

SIDE = 32
CFG = {"weights": "imagenet", "max_epochs": 3, "max_params": 10**9, "image_size": SIDE}


def _films(n: int = 6) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (n, SIDE, SIDE, 1)).astype(np.float32)


@pytest.fixture
def offline_imagenet(monkeypatch, tmp_path):
    """Serves ``weights="imagenet"`` from a local file per backbone; returns a setter."""
    served: dict[str, Path] = {}

    def serve(key: str, side: int) -> None:
        spec = bb.BACKBONES[key]
        plain = getattr(keras.applications, spec.constructor)(
            include_top=False, weights=None, input_shape=(side, side, 3), name="backbone")
        path = tmp_path / f"{key}_notop.weights.h5"
        plain.save_weights(str(path))
        served["path"] = path

    def fake_get_file(*args, **kwargs):
        return str(served["path"])

    monkeypatch.setattr(file_utils, "get_file", fake_get_file)
    return serve


def _export_model(family: str, cfg: dict, hp: kt.HyperParameters, trial_dir: Path,
                  tmp_path: Path) -> keras.Model:
    """The export's model for fold 0 of ``trial_dir``, saved and loaded as ``model.keras``."""
    y_pool = np.arange(10) % 2
    hm = fold_hypermodel(family, cfg, (SIDE, SIDE, 1), y_pool, 2)
    members = load_fold_models({"path": str(trial_dir), "trial_id": "0"}, hm, hp, 1)
    model = average_models(members, (SIDE, SIDE, 1), name=f"{family}_ensemble")
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.models.load_model(path)


def _outputs(model: keras.Model, films: np.ndarray, layer: str | None = None) -> np.ndarray:
    """The model's scores, or the output of ``layer`` (called eagerly: no tracing)."""
    if layer is not None:
        model = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(keras.ops.convert_to_numpy(model(films, training=False)))


# Each heavy backbone takes a minute or more on the shared 2-core VM (three builds, a save and
# a load); EfficientNetB0 (the one with imagenet-only layers) and the default MobileNetV3Small
# run in the fast suite, every backbone in CI (--slow).
FAST = ("efficientnetb0", "mobilenetv3small")


@pytest.mark.parametrize("key", [k if k in FAST else pytest.param(k, marks=pytest.mark.slow)
                                 for k in sorted(bb.BACKBONES)])
def test_transfer_export_computes_what_the_fold_model_computed(key, offline_imagenet,
                                                                tmp_path):
    offline_imagenet(key, bb.backbone_side(key, 0, SIDE))
    hp = kt.HyperParameters()
    hp.values.update({"backbone": key, "augmentation": True})
    search_hm = TransferHyperModel((SIDE, SIDE, 1), class_counts=[5, 5], max_params=10**9,
                                   weights="imagenet", max_epochs=3)
    fold_model = search_hm.build(hp)
    trial_dir = tmp_path / "trial_0"
    trial_dir.mkdir()
    fold_model.save_weights(str(fold_weights(trial_dir, 0)))
    exported = _export_model("transfer", CFG, hp, trial_dir, tmp_path)
    films = _films()
    # The pooled backbone features, then the scores: equal on the same films.
    feats = _outputs(fold_model, films, "head_gap")
    # Random backbones give tiny features (EfficientNetB0's ~1e-6), so the tolerance is
    # relative to their size: an input at the wrong scale changes them by their own size.
    scale = float(np.abs(feats).max())
    assert scale > 0 and np.ptp(feats) > 0
    np.testing.assert_allclose(_outputs(exported, films, "head_gap"), feats, rtol=1e-4,
                               atol=1e-4 * scale)
    np.testing.assert_allclose(_outputs(exported, films), _outputs(fold_model, films),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", ["cnn", "ann"])
def test_cnn_and_ann_exports_compute_what_the_fold_model_computed(family, tmp_path):
    hp = kt.HyperParameters()
    hp.values.update({"augmentation": True})
    fold_model = spaces.HYPERMODELS[family]((SIDE, SIDE, 1), class_counts=[5, 5],
                                            max_params=10**9).build(hp)
    assert any(layer.name.startswith("augmentation") for layer in fold_model.layers)
    trial_dir = tmp_path / "trial_0"
    trial_dir.mkdir()
    fold_model.save_weights(str(fold_weights(trial_dir, 0)))
    cfg = {"max_params": 10**9, "image_size": SIDE}
    exported = _export_model(family, cfg, hp, trial_dir, tmp_path)
    films = _films()
    expected = _outputs(fold_model, films)
    assert np.ptp(expected) > 0
    np.testing.assert_allclose(_outputs(exported, films), expected, rtol=1e-4, atol=1e-6)


def test_a_weights_file_builds_the_imagenet_graph_of_efficientnet(offline_imagenet, tmp_path):
    """--weights PATH: the backbone is ImageNet's graph (its stem Rescaling included), so a
    file of ImageNet weights runs on inputs at the scale they were trained on."""
    key = "efficientnetb0"
    offline_imagenet(key, SIDE)
    hp = kt.HyperParameters()
    hp.values.update({"backbone": key})
    path = str(tmp_path / f"{key}_notop.weights.h5")
    from_file = TransferHyperModel((SIDE, SIDE, 1), max_params=10**9, weights=path).build(hp)
    from_keras = TransferHyperModel((SIDE, SIDE, 1), max_params=10**9,
                                    weights="imagenet").build(hp)
    a, b = from_file.get_layer("backbone"), from_keras.get_layer("backbone")
    assert [type(layer).__name__ for layer in a.layers] == \
        [type(layer).__name__ for layer in b.layers]
    x = np.random.default_rng(1).uniform(-1, 1, (2, SIDE, SIDE, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(a(x)), np.asarray(b(x)), rtol=1e-4, atol=1e-5)

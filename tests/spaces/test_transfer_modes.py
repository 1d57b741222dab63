"""What a pretrained backbone actually does during fit (spaces/transfer.py, "Training mode").

Keras 3's functional model hands its own ``training`` flag to nested models during fit, so a
``training=False`` recorded when the graph was built does not hold. Read off the layers of an
EfficientNetB0 (the backbone with stochastic-depth dropout) from a weights file, in stage 1:
its dropout runs in training mode, its batch norm in inference mode (its moving statistics do
not change, because every batch-norm layer of a pretrained backbone is frozen).
"""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest

from spaces import backbones as bb
from spaces.transfer import TransferHyperModel

KEY, SIDE = "efficientnetb0", 32


@pytest.fixture
def dropout_modes(monkeypatch):
    """Records ``(layer name, training)`` for every Dropout call (patched before building)."""
    seen: list[tuple[str, bool]] = []
    original = keras.layers.Dropout.call

    def call(self, inputs, training=False):
        seen.append((self.name, bool(training)))
        return original(self, inputs, training=training)

    monkeypatch.setattr(keras.layers.Dropout, "call", call)
    return seen


def test_the_graph_does_not_record_a_training_flag_keras_would_override():
    hm = TransferHyperModel((SIDE, SIDE, 1), weights="imagenet")
    hm.load_pretrained = False  # the pretrained graph, no download
    hp = kt.HyperParameters()
    hp.values.update({"backbone": "mobilenetv3small"})
    node = next(layer for layer in hm.build(hp).get_config()["layers"]
                if layer["name"] == "backbone")
    assert "training" not in str(node["inbound_nodes"])


@pytest.mark.slow  # one compiled EfficientNetB0 epoch: ~60 s on the shared 2-core VM
def test_in_fit_the_backbone_dropout_trains_and_its_batch_norm_stays_in_inference(
        dropout_modes, tmp_path):
    path = tmp_path / f"{KEY}.weights.h5"
    bb.make_backbone(KEY, SIDE, "imagenet", load=False).save_weights(str(path))
    hm = TransferHyperModel((SIDE, SIDE, 1), max_params=10**8, weights=str(path), max_epochs=4)
    hp = kt.HyperParameters()
    hp.values.update({"backbone": KEY, "batch_size": 8, "head_epochs": 2,
                      "pool_dropout_rate": 0.0})
    model = hm.build(hp)
    backbone = model.get_layer("backbone")
    bns = [layer for layer in backbone.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    before = [np.array(layer.moving_mean) for layer in bns]
    dropout_modes.clear()
    x = np.random.default_rng(0).integers(0, 256, (8, SIDE, SIDE, 1)).astype(np.uint8)
    y = np.arange(8) % 2
    hm.fit(hp, model, x, y, validation_data=(x, y), epochs=1)  # stage 1 only
    # EfficientNet's stochastic depth (its blocks' Dropout layers) ran in training mode in
    # the training step (the validation pass calls them again with training=False).
    in_backbone = {name for name, _ in dropout_modes if name.startswith("block")}
    assert in_backbone
    assert {name for name, on in dropout_modes if on} == in_backbone
    for layer, old in zip(bns, before):  # batch norm in inference mode: statistics kept
        np.testing.assert_array_equal(np.array(layer.moving_mean), old)

"""The transfer family without internet: structure, exact budgets, staged fine-tuning, local
weights files and the offline refusal (MobileNetV3Small at its 32 px minimum, weights=None)."""

from __future__ import annotations


import keras
import keras_tuner as kt
import numpy as np
import pytest

from spaces import HYPERMODELS, describe_space, load_space
from spaces import backbones as bb
from spaces.budget import default_max_gflops, default_max_params
from spaces.transfer import TransferHyperModel

TINY = "mobilenetv3small"


def _hp(**fixed) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    for name, value in {"backbone": TINY, **fixed}.items():
        hp.Fixed(name, value)
    return hp


def test_registered_beside_cnn_and_ann_with_its_dimensions():
    assert HYPERMODELS["transfer"] is TransferHyperModel
    rows = {r["name"]: r for r in describe_space("transfer")}
    assert {"backbone", "input_size", "pool_dropout_rate", "dense_layers", "fine_tune_blocks",
            "head_epochs", "fine_tune_lr_ratio", "learning_rate", "batch_size"} <= set(rows)
    assert set(rows["backbone"]["choices"]) == set(bb.BACKBONES)
    assert rows["fine_tune_lr_ratio"]["condition"] == "fine_tune_blocks >= 1"
    # A [transfer] section narrows it like the other families' sections.
    assert "transfer" in load_space(None).families


def test_count_and_structure_match_the_built_model_and_exports_take_raw_pixels():
    hm = TransferHyperModel((32, 32, 1), class_counts=[10, 30], weights=None)
    hp = _hp(dense_layers=1, dense_units=32, input_size=0, output_bias=True)
    model = hm.build(hp)
    assert hm.count_params(hp) == model.count_params()
    names = [layer.name for layer in model.layers]
    assert names[:5] == ["image", "rescale", "to_pixels", "backbone_input", "backbone"]
    assert names[5:] == ["head_gap", "head_dropout", "dense1", "dense1_act", "output"]
    # The backbone's own preprocessing is inside: raw 0..255 grayscale in, one probability out.
    out = model.predict(np.full((2, 32, 32, 1), 200, np.uint8).astype("float32"), verbose=0)
    assert out.shape == (2, 1) and np.all(np.isfinite(out))
    # A larger input_size resizes inside the model; the backbone's minimum is kept.
    assert hm.side({"backbone": TINY, "input_size": 96}) == 96
    assert hm.side({"backbone": "xception", "input_size": 0}) == 71


def test_cpu_default_budget_refuses_xception_at_224_and_the_gpu_preset_accepts_it():
    from results.flow import GPU_PRESET

    hp = _hp(backbone="xception", input_size=224)
    cpu = TransferHyperModel((64, 64, 1), max_params=default_max_params(64),
                             max_gflops=default_max_gflops(64), weights=None)
    assert cpu.refusal(kt.HyperParameters()) is None  # the defaults' first trial is built
    reason = cpu.refusal(hp)  # over both limits; the parameter count is checked first
    assert reason is not None and "20,863,529 parameters" in reason and "--max-params" in reason
    flops_only = TransferHyperModel((64, 64, 1), max_params=10**9,
                                    max_gflops=default_max_gflops(64), weights=None)
    reason = flops_only.refusal(hp)
    assert reason is not None and "GFLOPs per image" in reason and "--max-gflops" in reason
    assert 8.0 < cpu.gflops(hp) < 10.0  # ~9.1 exact: 2 x multiply-adds of every convolution
    with pytest.raises(kt.errors.FailedTrialError, match="--max-gflops"):
        flops_only.build(hp)  # refused before any layer of the classifier is built
    gpu = TransferHyperModel((128, 128, 1), max_params=GPU_PRESET["max_params"],
                             max_gflops=GPU_PRESET["max_gflops"], weights=None)
    assert gpu.refusal(hp) is None


@pytest.mark.slow  # two compiled stages of MobileNetV3: ~80 s on the shared 2-core VM
def test_staged_fit_trains_the_head_then_unfreezes_the_top_blocks(tmp_path):
    path = tmp_path / "mobilenetv3small.weights.h5"
    bb.make_backbone(TINY, 32, None).save_weights(str(path))
    hm = TransferHyperModel((32, 32, 1), weights=str(path))
    hp = _hp(head_epochs=1, fine_tune_blocks=2, fine_tune_lr_ratio=0.1, learning_rate=1e-3)
    model = hm.build(hp)
    backbone = model.get_layer("backbone")
    assert not backbone.trainable and len(model.trainable_weights) == 2  # stage 1: head only
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append((epoch, len(self.model.trainable_weights),
                         float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))

    x = np.random.default_rng(0).integers(0, 255, (24, 32, 32, 1)).astype(np.uint8)
    y = np.arange(24) % 2
    hist = hm.fit(hp, model, x, y, validation_data=(x[:8], y[:8]), epochs=3,
                  callbacks=[Probe()])
    assert hist.epoch == [0, 1, 2] and len(hist.history["val_loss"]) == 3
    assert seen[0][1] == 2 and seen[1][1] > 2 and seen[1][0] == 1
    assert seen[0][2] == pytest.approx(1e-3) and seen[1][2] == pytest.approx(1e-4)
    top = bb.blocks(backbone, TINY)
    unfrozen = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    expected = {layer.name for group in top[-2:] for layer in group if layer.weights
                and not isinstance(layer, keras.layers.BatchNormalization)}
    assert unfrozen == expected
    # The stem never trained: it still holds the file's weights.
    saved = bb.make_backbone(TINY, 32, str(path)).get_layer("conv").get_weights()[0]
    np.testing.assert_array_equal(backbone.get_layer("conv").get_weights()[0], saved)


def test_a_weights_file_for_another_backbone_or_several_backbones_is_refused(tmp_path):
    path = tmp_path / "mnv3.weights.h5"
    bb.make_backbone(TINY, 32, None).save_weights(str(path))
    bb.check_weights(str(path), [TINY])  # the matching file loads
    with pytest.raises(bb.WeightsError, match="searches 2 backbones"):
        bb.check_weights(str(path), [TINY, "efficientnetb0"])
    with pytest.raises(bb.WeightsError, match="cannot be loaded into the efficientnetb0"):
        bb.check_weights(str(path), ["efficientnetb0"])
    with pytest.raises(bb.WeightsError, match="no such file"):
        bb.check_weights(str(tmp_path / "missing.h5"), [TINY])


def test_offline_without_cached_weights_names_both_ways_out(offline_imagenet):
    with pytest.raises(bb.WeightsError) as err:
        bb.check_weights("imagenet", [TINY])
    text = str(err.value)
    assert "internet" in text and str(bb.keras_cache_dir()) in text
    assert "--weights PATH" in text and "--weights none" in text and "\n" not in text

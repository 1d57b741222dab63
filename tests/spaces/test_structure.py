"""The built model matches its hyperparameters, for the defaults and random samples."""

from __future__ import annotations

import math

import keras
import keras_tuner as kt
import pytest
from conftest import SHAPE, sample_hps

from spaces import ANNHyperModel, CNNHyperModel, layer_widths, placement
from spaces.common import make_schedule

N_SAMPLES = 25
OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
              "sgd": keras.optimizers.SGD}


def _bn(prefix, placement_, suffix=""):
    return {"before_activation": ["bn"], "after_activation": ["bn"]}.get(placement_, [])


def expected_cnn(v):
    """(name, class) of every layer after the rescaling, derived independently of spaces/."""
    out = []
    filters = layer_widths(v["conv_filters"], v["conv_blocks"], v["filter_hierarchy"], cap=512)
    bn_on = placement(v.get("conv_batch_norm_blocks") or "all", v["conv_blocks"])
    drop = placement(v["conv_dropout"], v["conv_blocks"])
    pool = keras.layers.MaxPooling2D if v["pooling"] == "max" else keras.layers.AveragePooling2D
    for b in range(1, v["conv_blocks"] + 1):
        bn = v["conv_batch_norm"] if bn_on[b - 1] else "none"
        for c in range(1, v["convs_per_block"] + 1):
            out.append((f"block{b}_conv{c}", keras.layers.Conv2D, filters[b - 1]))
            if bn == "before_activation":
                out.append((f"block{b}_bn{c}", keras.layers.BatchNormalization, None))
            out.append((f"block{b}_act{c}", keras.layers.Activation, None))
            if bn == "after_activation":
                out.append((f"block{b}_bn{c}", keras.layers.BatchNormalization, None))
        out.append((f"block{b}_pool", pool, None))
        if drop[b - 1]:
            out.append((f"block{b}_dropout", keras.layers.Dropout, v["conv_dropout_rate"]))
    out.append(("head_flatten", keras.layers.Flatten, None) if v["head"] == "flatten"
               else ("head_gap", keras.layers.GlobalAveragePooling2D, None))
    n = v["dense_layers"]
    if n:
        units = layer_widths(v["dense_units"], n, v["dense_hierarchy"], cap=2048)
        drop = placement(v["dense_dropout"], n)
        for i in range(1, n + 1):
            out += [(f"dense{i}", keras.layers.Dense, units[i - 1]),
                    (f"dense{i}_act", keras.layers.Activation, None)]
            if drop[i - 1]:
                out.append((f"dense{i}_dropout", keras.layers.Dropout, v["dense_dropout_rate"]))
    return out


def expected_ann(v):
    out = [("flatten", keras.layers.Flatten, None)]
    n = v["dense_layers"]
    units = layer_widths(v["dense_units"], n, v["dense_hierarchy"], cap=4096)
    drop = placement(v["dense_dropout"], n)
    bn = v["dense_batch_norm"]
    for i in range(1, n + 1):
        out.append((f"dense{i}", keras.layers.Dense, units[i - 1]))
        if bn == "before_activation":
            out.append((f"dense{i}_bn", keras.layers.BatchNormalization, None))
        out.append((f"dense{i}_act", keras.layers.Activation, None))
        if bn == "after_activation":
            out.append((f"dense{i}_bn", keras.layers.BatchNormalization, None))
        if drop[i - 1]:
            out.append((f"dense{i}_dropout", keras.layers.Dropout, v["dense_dropout_rate"]))
    return out


def check_model(model, hm, v, expected):
    layers = model.layers
    if v["augmentation"]:  # the random layers come first, on raw pixels (training only)
        assert layers[1].name.startswith("augmentation")
        layers = [layers[0], *layers[2:]]
    assert [type(layers[0]).__name__, layers[1].name] == ["InputLayer", "rescale"]
    assert math.isclose(layers[1].scale, 1 / 255)
    # Shortcut-breaking preprocessing (spaces/preprocess.py) comes right after the rescaling.
    pre = (["border_crop", "border_crop_resize"] if v["border_crop"] else []) + (
        ["intensity_norm"] if v["intensity_norm"] != "none" else [])
    assert [layer.name for layer in layers[2:2 + len(pre)]] == pre
    body = layers[2 + len(pre):-1]
    assert [(l.name, type(l)) for l in body] == [(n, c) for n, c, _ in expected]
    for layer, (_, cls, arg) in zip(body, expected):
        if cls is keras.layers.Conv2D:
            assert layer.filters == arg and layer.kernel_size == (v["kernel_size"],) * 2
        elif cls is keras.layers.Dense:
            assert layer.units == arg
        elif cls is keras.layers.Dropout:
            assert math.isclose(layer.rate, arg)
        elif cls is keras.layers.Activation:
            assert layer.activation.__name__ == v["activation"]
        if cls in (keras.layers.Conv2D, keras.layers.Dense):
            reg = layer.kernel_regularizer
            if v["l2"]:
                assert math.isclose(float(reg.l2), v["l2_strength"], rel_tol=1e-6)
            else:
                assert reg is None
    out = layers[-1]
    assert out.name == "output" and out.units == 1 and out.activation.__name__ == "sigmoid"
    bias = float(keras.ops.convert_to_numpy(out.bias)[0])
    want = math.log(hm.class_counts[1] / hm.class_counts[0]) if v["output_bias"] else 0.0
    assert math.isclose(bias, want, abs_tol=1e-6)
    opt = model.optimizer
    assert type(opt) is OPTIMIZERS[v["optimizer"]]
    assert math.isclose(float(keras.ops.convert_to_numpy(opt.learning_rate)), v["learning_rate"],
                        rel_tol=1e-5)
    if v["optimizer"] == "sgd":
        assert math.isclose(opt.momentum, v["momentum"], rel_tol=1e-6)
    schedule = make_schedule(v)
    if v["lr_schedule"] == "exponential":
        s = v["lr_decay_epochs"]
        assert math.isclose(schedule(s), v["learning_rate"] * 0.1, rel_tol=1e-9)
    else:
        assert schedule is None
    assert model.count_params() <= hm.max_params


FAMILIES = [(CNNHyperModel, expected_cnn), (ANNHyperModel, expected_ann)]


@pytest.mark.parametrize("cls,expected", FAMILIES, ids=["cnn", "ann"])
def test_defaults_build_basic_model(cls, expected):
    hm = cls(SHAPE, class_counts=[30, 70])
    hp = kt.HyperParameters()
    model = hm.build(hp)
    v = hp.values
    check_model(model, hm, v, expected(v))
    if cls is CNNHyperModel:  # the notes' basic CNN: 2 blocks of 32 filters, 1 dense layer
        assert (v["conv_blocks"], v["conv_filters"], v["dense_layers"]) == (2, 32, 1)
    else:
        assert v["dense_layers"] == 2
    assert model.compiled_loss is not None or model.loss == "binary_crossentropy"


@pytest.mark.parametrize("cls,expected", FAMILIES, ids=["cnn", "ann"])
def test_random_samples_match_structure(cls, expected):
    hm = cls(SHAPE, class_counts=[30, 70], max_params=3_000_000)
    built = rejected = 0
    seen: dict[str, set] = {}
    for seed in range(N_SAMPLES):
        hp = sample_hps(hm, seed)
        for name, value in hp.values.items():
            seen.setdefault(name, set()).add(value)
        try:
            model = hm.build(hp)
        except kt.errors.FailedTrialError as err:
            assert "over the limit of 3,000,000" in str(err)
            rejected += 1
            continue
        check_model(model, hm, hp.values, expected(hp.values))
        built += 1
        keras.backend.clear_session()
    assert built >= 10 and built + rejected == N_SAMPLES
    # Every dimension varied in the samples (conditional ones appear when active).
    varying = {n for n, vals in seen.items() if len(vals) > 1}
    assert varying == set(hm.space.dims(hm.family)), set(hm.space.dims(hm.family)) - varying


def test_softmax_for_more_classes():
    hm = CNNHyperModel(SHAPE, num_classes=3, class_counts=[10, 20, 70])
    hp = kt.HyperParameters()
    hp.Fixed("output_bias", True)
    model = hm.build(hp)
    out = model.get_layer("output")
    assert out.units == 3 and out.activation.__name__ == "softmax"
    bias = keras.ops.convert_to_numpy(out.bias)
    assert all(math.isclose(b, math.log(c / 100), abs_tol=1e-6) for b, c in zip(bias, [10, 20, 70]))
    model.evaluate(keras.ops.zeros((4, *SHAPE)), keras.ops.convert_to_tensor([0, 1, 2, 1]),
                   verbose=0)

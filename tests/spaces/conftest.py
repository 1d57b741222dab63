"""Fixtures for the spaces tests: tiny inputs and random hyperparameter sets from the real space."""

from __future__ import annotations

import random

import pytest

SHAPE = (16, 16, 1)


def sample_hps(model, seed: int):
    """A random, condition-respecting hyperparameter set from ``model``'s own space.

    Mirrors KerasTuner's RandomSearch oracle: walk the registered space in order and draw a value
    for every hyperparameter whose conditions hold under the values drawn so far.
    """
    import keras_tuner as kt

    probe = kt.HyperParameters()
    model.declare_hyperparameters(probe)
    rng = random.Random(seed)
    hps = kt.HyperParameters()
    for hp in probe.space:
        hps.merge([hp])
        if hps.is_active(hp):
            hps.values[hp.name] = hp.random_sample(rng.randint(1, 2**31))
    return hps


@pytest.fixture
def write_toml(tmp_path):
    """Writes TOML text to a file under tmp_path and returns its path."""
    def _write(text: str, name: str = "space.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return _write


@pytest.fixture
def offline_imagenet(monkeypatch):
    """No network, and no cached MobileNetV3Small ImageNet file (skips when one is cached): a
    machine where ``weights=imagenet`` cannot be had."""
    import urllib.error
    import urllib.request

    from spaces import backbones as bb

    cached = list(bb.keras_cache_dir().glob("weights_mobilenet_v3_small*no_top*"))
    if cached:
        pytest.skip(f"the ImageNet file is cached on this machine ({cached[0]})")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)

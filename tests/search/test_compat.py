"""The seam to private KerasTuner/Keras/TensorFlow internals (``search/runtime/compat.py``): every
internal the service relies on exists in the installed versions, and a missing one is refused
at start-up with its name and the versions."""

from __future__ import annotations

import importlib

import keras
import keras_tuner as kt
import pytest
from search_helpers import tiny_config

from search.engine import run_search_job
from search.errors import SearchError
from search.runtime import compat


@pytest.mark.parametrize("module,attr", compat.KT_MODULE_NAMES,
                         ids=[f"{m}.{a}" for m, a in compat.KT_MODULE_NAMES])
def test_module_internal_exists(module, attr):
    assert hasattr(importlib.import_module(module), attr), \
        f"{module}.{attr} is missing in keras_tuner {kt.__version__}"


@pytest.mark.parametrize("module,cls,attr", compat.OVERRIDDEN,
                         ids=[f"{c}.{a}" for _, c, a in compat.OVERRIDDEN])
def test_overridden_base_method_exists(module, cls, attr):
    assert hasattr(getattr(importlib.import_module(module), cls), attr), \
        f"{module}.{cls}.{attr} (overridden or called by the service) is missing in " \
        f"keras_tuner {kt.__version__}"


@pytest.mark.parametrize("attr", compat.ORACLE_ATTRIBUTES)
def test_oracle_instance_attribute_exists(attr):
    oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
    assert hasattr(oracle, attr), \
        f"Oracle.{attr} is missing in keras_tuner {kt.__version__}"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow internals")
def test_tensorflow_internals_exist():
    assert compat.tf_gradient_registry() is not None, \
        "tensorflow.python.framework.ops._gradient_registry._registry is missing"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert hasattr(model, "_distribute_strategy"), \
        f"keras {keras.__version__} models have no _distribute_strategy"
    assert compat.model_distribute_strategy(model) is None


def test_nothing_missing_in_the_installed_versions():
    assert compat.missing_internals() == [], compat.versions()


def test_a_missing_internal_is_named_with_the_versions(monkeypatch):
    monkeypatch.setattr(compat, "KT_MODULE_NAMES",
                        (*compat.KT_MODULE_NAMES, ("keras_tuner.src.config", "NO_SUCH_FLAG")))
    with pytest.raises(SearchError) as err:
        compat.check_supported()
    message = str(err.value)
    assert "keras_tuner.src.config.NO_SUCH_FLAG" in message
    assert f"keras_tuner {kt.__version__}" in message and f"keras {keras.__version__}" in message


def test_engine_refuses_an_unsupported_version_before_training(tmp_path, synthetic_root,
                                                               monkeypatch):
    monkeypatch.setattr(compat, "OVERRIDDEN", (
        *compat.OVERRIDDEN, ("keras_tuner.src.engine.oracle", "Oracle", "_gone_hook")))
    with pytest.raises(SearchError, match="Oracle._gone_hook"):
        run_search_job(tiny_config(tmp_path, synthetic_root))
    assert not (tmp_path / "run" / "run.json").exists()


def test_oracle_lock_is_reentrant_and_released_on_errors():
    oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
    with pytest.raises(RuntimeError):
        with compat.oracle_lock(oracle):
            with compat.oracle_lock(oracle):  # re-entrant for the holding thread
                raise RuntimeError("boom")
    with compat.oracle_lock(oracle):  # released: no deadlock
        pass

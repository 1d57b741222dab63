"""The failpoint seam (``search/runtime/failpoints.py``): malformed ``CXR_TEST_KILL_AT`` values are
refused at start-up, naming the value and the accepted forms, before any training."""

from __future__ import annotations

import pytest
from search_helpers import tiny_config

from search.engine import run_search_job
from search.errors import SearchError
from search.runtime import failpoints

BAD = ["after_trial:x", "trial:1", "after_trial:", "trial:1:fold:0:epoch:x",
       "trial:1:fold:0:epoch:2:extra", "after_trial:-1", "epoch:3", "kill"]


@pytest.mark.parametrize("value", BAD)
def test_bad_values_are_refused_naming_value_and_forms(value):
    with pytest.raises(SearchError) as err:
        failpoints.check_env({failpoints.ENV: value})
    message = str(err.value)
    assert repr(value) in message and failpoints.ENV in message
    assert all(form in message for form in failpoints.FORMS)


@pytest.mark.parametrize("value", ["trial:1:fold:0:epoch:2", "after_trial:3", "after_trial:0"])
def test_good_values_parse(value):
    failpoints.check_env({failpoints.ENV: value})
    assert failpoints.parse(value) == tuple(value.split(":"))


def test_unset_or_empty_is_inert():
    failpoints.check_env({})
    failpoints.check_env({failpoints.ENV: ""})


def test_engine_refuses_a_bad_value_before_training(tmp_path, synthetic_root, monkeypatch):
    monkeypatch.setenv(failpoints.ENV, "after_trial:x")
    with pytest.raises(SearchError, match="after_trial:x"):
        run_search_job(tiny_config(tmp_path, synthetic_root))
    assert not (tmp_path / "run" / "run.json").exists()

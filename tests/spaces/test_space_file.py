"""Search-space files: overrides, refusals, serialisation, describe output."""

from __future__ import annotations

import json

import pytest

from spaces import SpaceConfig, SpaceError, describe_space, load_space


def row(rows, name):
    return next(r for r in rows if r["name"] == name)


def test_defaults_roundtrip_and_fingerprint():
    space = load_space(None)
    data = json.loads(json.dumps(space.to_dict()))
    again = SpaceConfig.from_dict(data)
    assert again.fingerprint() == space.fingerprint() == load_space(None).fingerprint()
    assert again.families == space.families


def test_fix_two_and_narrow_one_changes_describe(write_toml):
    before = describe_space("cnn", load_space(None))
    path = write_toml('[common]\nlearning_rate = 0.001\noptimizer = "adam"\n'
                      '[cnn]\nconv_blocks = {min = 2, max = 4}\n')
    space = load_space(path)
    after = describe_space("cnn", space)
    assert row(after, "learning_rate")["fixed"] and row(after, "optimizer")["fixed"]
    assert not row(before, "learning_rate")["fixed"]
    assert row(after, "conv_blocks")["range"] == [2, 4]
    assert row(before, "conv_blocks")["range"] == [1, 5]
    assert row(after, "momentum")["active"] is False  # sgd is no longer possible
    assert space.fingerprint() != load_space(None).fingerprint()
    assert row(describe_space("ann", space), "learning_rate")["fixed"]  # [common] reaches ann


def test_family_section_beats_common_and_restricts_choices(write_toml):
    space = load_space(write_toml('[common]\nbatch_size = [16, 32]\n[ann]\nbatch_size = 64\n'
                                  'dense_hierarchy = ["diamond", "increasing"]\n'))
    assert describe_space("cnn", space)[8]["choices"] == [16, 32]
    ann = describe_space("ann", space)
    assert row(ann, "batch_size")["fixed"] and row(ann, "batch_size")["default"] == 64
    assert row(ann, "dense_hierarchy")["choices"] == ["increasing", "diamond"]
    assert row(ann, "dense_hierarchy")["default"] == "increasing"


def test_narrowed_range_moves_default_inside(write_toml):
    space = load_space(write_toml('[ann]\ndense_units = {min = 256, max = 1024}\n'
                                  'dense_layers = {min = 3, max = 6, default = 4}\n'))
    assert row(describe_space("ann", space), "dense_units")["default"] == 256
    assert row(describe_space("ann", space), "dense_layers")["default"] == 4


@pytest.mark.parametrize("text,match", [
    ("[cnn]\nconv_blox = 3\n", "valid names: .*conv_blocks"),
    ("[common]\nconv_blocks = 3\n", "valid names"),
    ("[rnn]\nx = 1\n", "unknown section"),
    ("[cnn]\nconv_blocks = 2.5\n", "expected a int"),
    ("[cnn]\nconv_blocks = \"three\"\n", "expected a int"),
    ("[common]\noptimizer = \"adagrad\"\n", "expected one of"),
    ("[common]\noptimizer = []\n", "empty"),
    ("[cnn]\nconv_blocks = {min = 4, max = 2}\n", "inverted"),
    ("[cnn]\nconv_blocks = {min = 0, max = 2}\n", "bounds"),
    ("[cnn]\nconv_blocks = {low = 1}\n", "unknown key"),
    ("[cnn]\nconv_blocks = [1, 2]\n", "restricts choices"),
    ("[cnn]\nconv_blocks = {min = 2, max = 4, default = 5}\n", "default 5"),
    ("[common]\nl2 = 1\n", "expected a bool"),
    ("[cnn\n", "not valid TOML"),
])
def test_bad_space_files_refused(write_toml, text, match):
    with pytest.raises(SpaceError, match=match):
        load_space(write_toml(text))


def test_missing_file_refused(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(tmp_path / "nope.toml")


def test_directory_or_non_utf8_space_file_refused(tmp_path):
    with pytest.raises(SpaceError, match=f"{tmp_path}.*is a directory"):
        load_space(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("[cnn]\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpaceError, match="latin1.toml is not UTF-8"):
        load_space(bad)

"""The ``space`` subcommand lists every dimension of the issue."""

from __future__ import annotations

import argparse
import json

import pytest

from spaces.commands import register

CNN_DIMS = {"conv_blocks", "conv_filters", "filter_hierarchy", "kernel_size", "convs_per_block",
            "pooling", "conv_batch_norm", "conv_batch_norm_blocks", "conv_dropout",
            "conv_dropout_rate", "head", "dense_layers", "dense_units", "dense_hierarchy",
            "dense_dropout", "dense_dropout_rate"}
ANN_DIMS = {"dense_layers", "dense_units", "dense_hierarchy", "dense_batch_norm", "dense_dropout",
            "dense_dropout_rate"}
COMMON = {"activation", "l2", "l2_strength", "optimizer", "momentum", "learning_rate",
          "lr_schedule", "lr_decay_epochs", "batch_size", "augmentation", "augmentation_strength",
          "class_weights", "output_bias", "augmentation_ranges", "border_crop", "intensity_norm"}


def run(argv, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("family,dims", [("cnn", CNN_DIMS), ("ann", ANN_DIMS)])
def test_json_lists_every_dimension(family, dims, capsys):
    rows = json.loads(run(["space", "--model", family, "--json"], capsys))
    assert {r["name"] for r in rows} == dims | COMMON
    keys = {"name", "type", "range", "choices", "default", "log", "condition", "fixed", "active"}
    assert all(keys <= set(r) for r in rows)
    assert next(r for r in rows if r["name"] == "momentum")["condition"] == "optimizer in ['sgd']"


def test_table_and_space_file(write_toml, capsys):
    path = write_toml("[cnn]\nkernel_size = 5\n")
    out = run(["space", "--model", "cnn", "--space", str(path)], capsys)
    line = next(l for l in out.splitlines() if l.startswith("kernel_size"))
    assert "(fixed)" in line and " 5 " in line

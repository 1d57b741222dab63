"""The space's measured prices (spaces/prices.py) and the ``space`` command's price column."""

from __future__ import annotations

import argparse
import json

import spaces.prices as prices
from spaces.commands import run_space

TABLE = {"machine": "2 cores, test", "date": "2026-12-06", "load_start": 0.1, "load_end": 0.2,
         "families": {"cnn": {"64": {"baseline_seconds_per_epoch": 4.0, "prices": {
             "intensity_norm": {'"none"': 1.0, '"per_image"': 1.02, '"equalize"': 1.4},
             "conv_blocks": {"1": 0.6, "2": 1.0, "5": 1.05},
             "pooling": {'"max"': 1.0, '"average"': 1.01}}}}}}


def test_price_text_names_the_values_that_cost_more_or_less():
    assert prices.price_text(TABLE, "cnn", 64, "intensity_norm") == "equalize 1.4x"
    assert prices.price_text(TABLE, "cnn", 64, "conv_blocks") == "1 0.6x"
    assert prices.price_text(TABLE, "cnn", 64, "pooling") == "-"  # all within 10%
    assert prices.price_text(TABLE, "cnn", 128, "pooling") == ""  # not measured at 128 px
    assert prices.price_text(None, "cnn", 64, "pooling") == ""
    assert prices.priced_sizes(TABLE, "cnn") == [64] and prices.priced_sizes(TABLE, "ann") == []


def test_space_command_shows_the_price_column_only_when_measured(tmp_path, monkeypatch, capsys):
    path = tmp_path / "space_prices.json"
    path.write_text(json.dumps(TABLE))
    monkeypatch.setattr(prices, "PRICES_JSON", path)
    args = argparse.Namespace(model="cnn", space=None, json=False, price_size=64)
    assert run_space(args) == 0
    out = capsys.readouterr().out
    assert "price at 64 px" in out and "equalize 1.4x" in out and "2 cores, test" in out
    args.price_size = 128
    run_space(args)
    assert "no measured prices for cnn at 128 px; measured: 64 px" in capsys.readouterr().out
    monkeypatch.setattr(prices, "PRICES_JSON", tmp_path / "absent.json")
    args.json = True
    run_space(args)
    rows = json.loads(capsys.readouterr().out)
    assert all(r["price"] is None for r in rows)

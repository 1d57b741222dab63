"""The ``space`` subcommand: print the effective search space of a model family."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``space --model {cnn,ann,transfer} [--space FILE] [--json]``."""
    parser = subparsers.add_parser(
        "space",
        help="print the effective search space of a model family",
        description=(
            "Print every hyperparameter of the CNN, ANN or transfer (pretrained backbone) search space: type, range or choices, "
            "default, and the condition under which it is active, after merging --space FILE "
            "onto the shipped defaults (spaces/default_space.toml)."
        ),
    )
    parser.add_argument("--model", choices=("cnn", "ann", "transfer"), required=True,
                        help="model family")
    parser.add_argument("--space", metavar="FILE", default=None,
                        help="TOML file narrowing, widening or fixing dimensions")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--price-size", type=int, default=64, metavar="PX",
                        help="image size whose measured prices are shown (each value's seconds "
                             "per epoch over the default's, benchmarks/space_cost.py; default 64)")
    parser.set_defaults(func=run_space)


def run_space(args: argparse.Namespace) -> int:
    """Prints the space as a table or JSON; bad space files raise SpaceError (exit code 2)."""
    import json

    from spaces.describe import describe_space, format_table
    from spaces.space import load_space

    from spaces.prices import load_prices, price_text, priced_sizes

    rows = describe_space(args.model, load_space(args.space))
    prices = load_prices()
    size = args.price_size
    texts = {r["name"]: price_text(prices, args.model, size, r["name"]) for r in rows}
    if args.json:
        for r in rows:
            r["price"] = texts[r["name"]] or None
        print(json.dumps(rows, indent=2))
        return 0
    if size not in priced_sizes(prices, args.model):
        print(format_table(rows))
        sizes = priced_sizes(prices, args.model)
        print(f"\n(no measured prices for {args.model} at {size} px"
              + (f"; measured: {', '.join(map(str, sizes))} px" if sizes else
                 "; run benchmarks/space_cost.py on an idle machine") + ")")
        return 0
    head = f"price at {size} px (x default's s/epoch)"
    print(format_table(rows, texts, head))
    print(f"\nprices: {prices.get('machine')}, {prices.get('date')}, load "
          f"{prices.get('load_start')} -> {prices.get('load_end')} (benchmarks/space_cost.py)")
    return 0

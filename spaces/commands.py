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
    parser.set_defaults(func=run_space)


def run_space(args: argparse.Namespace) -> int:
    """Prints the space as a table or JSON; bad space files raise SpaceError (exit code 2)."""
    import json

    from spaces.describe import describe_space, format_table
    from spaces.space import load_space

    rows = describe_space(args.model, load_space(args.space))
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0

"""``run_search.py search``: parse options into a SearchConfig and call the engine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.config import DEFAULT_MAX_PARAMS, DEFAULT_OBJECTIVE, TUNERS, SearchConfig

_HELP_MAX_TRIALS = (
    "trials to run per model family (completed, pruned or failed; configurations refused as "
    "over budget are not trials). hyperband: each round of a promoted configuration is one "
    "trial, and each bracket is sized from the trials left, so the best configurations reach "
    "--max-epochs (10 trials, 10 epochs: 8 configurations x 4 epochs, the best 2 continue to 10). "
    "bayesian/tpe/random: the number of configurations tried. Raise it on an existing run "
    "folder to extend a finished search (default 10)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``search`` subcommand."""
    p = subparsers.add_parser(
        "search", help="search CNN/ANN hyperparameters with k-fold cross-validation (resumable)",
        description="Runs or resumes a hyperparameter search. Rerunning the same command on the "
                    "same --run-dir resumes it without losing finished folds.")
    p.add_argument("--model", choices=("cnn", "ann", "transfer", "both"), default="both",
                   help="model family to search; both = cnn and ann, one KerasTuner project "
                        "each (default); transfer = pretrained keras.applications backbones "
                        "fine-tuned in stages (see README, Pretrained backbones)")
    p.add_argument("--weights", default=None, metavar="imagenet|PATH|none",
                   help="transfer family: the backbone's starting weights. imagenet (default) "
                        "downloads through Keras' cache (~/.keras/models); PATH loads a local "
                        "weights file (offline machines; fix the backbone in --space; a "
                        "resume matches it by sha256, so a moved copy is accepted); none "
                        "trains the backbone from scratch")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="chest_xray folder (train/<CLASS>/...); default: built-in synthetic data")
    p.add_argument("--tuner", choices=TUNERS, default="hyperband",
                   help="hyperband (default): successive halving over epochs; bayesian: "
                        "Gaussian process; tpe: Optuna's TPE, which models conditional "
                        "dimensions where they are active; random. bayesian and tpe draw "
                        "30%% of --max-trials (3 to 10) at random first, the defaults first")
    p.add_argument("--folds", type=int, default=3, metavar="K",
                   help="patient-grouped stratified folds (1 = one 20%% hold-out; default 3)")
    p.add_argument("--max-trials", type=int, default=10, metavar="N", help=_HELP_MAX_TRIALS)
    p.add_argument("--max-epochs", type=int, default=10, metavar="E",
                   help="epochs per fold (hyperband: the last round's budget; default 10)")
    p.add_argument("--min-epochs", type=int, default=None, metavar="E",
                   help="hyperband: epochs of the first round; each later round trains 3x "
                        "longer up to --max-epochs (default: a third of --max-epochs, so two "
                        "rounds; slow learners such as augmented models are not judged after "
                        "one or two epochs)")
    p.add_argument("--patience", type=int, default=3, metavar="P",
                   help="early-stopping patience in epochs (best weights restored; default 3)")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="per model family: stop at the end of the epoch that spends it (the fold "
                        "in progress restarts on resume; finished folds are kept); the run stays "
                        "resumable")
    p.add_argument("--no-ladder", dest="ladder", action="store_false",
                   help="train every fold of every configuration. By default every "
                        "configuration climbs a successive-halving ladder: it is ranked by the "
                        "objective after --first-rung epochs of its first fold, then 3x as many, "
                        "then at the end of that fold, and goes on only while it is in the top "
                        "third of the configurations that reached the same rung; the others are "
                        "recorded as pruned, never exported (see README, The ladder)")
    # The two rules the ladder replaced: same effect as --no-ladder, kept for old scripts.
    p.add_argument("--no-racing", "--no-pruning", dest="ladder", action="store_false",
                   help=argparse.SUPPRESS)
    p.add_argument("--first-rung", type=int, default=2, metavar="E",
                   help="epochs of the first fold after which the ladder first ranks a "
                        "configuration (default 2; see README, The ladder)")
    p.add_argument("--ladder-brackets", type=int, default=1, metavar="B",
                   help="brackets side by side (Hyperband over the ladder): trial i joins "
                        "bracket i mod B, first judged at rung i mod B, so slow starters in the "
                        "later brackets are judged later (default 1)")
    p.add_argument("--max-trial-share", type=float, default=None, metavar="F",
                   help="with --time-budget: a trial may spend at most this share of the budget "
                        "before a ladder rung compares it with another configuration; one "
                        "stopped so is censored (no tuner learns from it) (default 0.25; 1 "
                        "turns the rule off)")
    p.add_argument("--objective", default=DEFAULT_OBJECTIVE, metavar="NAME",
                   help="val_<metric>, val_loss, or a shortcut probe (val_auc_geometric, "
                        "val_auc_border, val_auc_photometric, val_auc_batch, val_auc_robust); "
                        "direction inferred (default auto: val_auc_geometric, the AUC under small "
                        "rotations, shifts and zooms of the validation images, which ranks "
                        "models by how they hold up on new films, for two classes; val_auc for "
                        "more; see README, Selecting for new patients)")
    p.add_argument("--image-size", type=int, default=64, metavar="N")
    p.add_argument("--color-mode", choices=("grayscale", "rgb"), default="grayscale")
    p.add_argument("--positive-class", default=None, metavar="NAME",
                   help="label 1 for two classes (default PNEUMONIA when present)")
    p.add_argument("--space", dest="space_file", default=None, metavar="FILE",
                   help="TOML overrides of the search space (see `run_search.py space`)")
    p.add_argument("--seed", type=int, default=42, metavar="S",
                   help="same seed: same split, folds, hyperparameter sequence, initial weights")
    p.add_argument("--run-dir", default="runs/default", metavar="DIR")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run folder's previous search and start afresh")
    p.add_argument("--quiet", action="store_true",
                   help="no terminal output (search.log still gets every line)")
    p.add_argument("--max-params", type=int, default=None, metavar="N",
                   help=f"models with more parameters fail their trial, refused before "
                        f"building (default {DEFAULT_MAX_PARAMS:,} x (image size / 64)^2)")
    p.add_argument("--max-gflops", type=float, default=None, metavar="G",
                   help="models needing more forward GFLOPs per image fail their trial, refused "
                        "before building (default 1.0 x (image size / 64)^2; 0: no limit)")
    p.add_argument("--test-fraction", type=float, default=0.15, metavar="F",
                   help="patient-grouped test share carved from train when there is no test/ "
                        "folder (default 0.15)")
    tb = p.add_mutually_exclusive_group()
    tb.add_argument("--tensorboard", default="auto", metavar="DIR",
                    help="write TensorBoard event files here: per-fold epoch curves and one "
                         "HParams session per trial (default RUN_DIR/tensorboard; open with "
                         "`tensorboard --logdir DIR`)")
    tb.add_argument("--no-tensorboard", dest="tensorboard", action="store_const", const=None,
                    help="write no TensorBoard files")
    add_scale_arguments(p)
    p.set_defaults(func=run)


def add_scale_arguments(p: argparse.ArgumentParser) -> None:
    """GPU-box and distributed-search options (search.runtime.devices, search.distributed)."""
    g = p.add_argument_group(
        "GPU box and distributed search",
        "Devices, precision and XLA for each trial; KerasTuner's chief/worker mode over gRPC "
        "with every process on one shared --run-dir (see README 'Scale').")
    g.add_argument("--mixed-precision", nargs="?", const="auto", default="off",
                   choices=("off", "auto", "float16", "bfloat16"),
                   help="16-bit compute, float32 weights and output layer; the bare flag means "
                        "auto: float16 with a GPU, bfloat16 without (default off)")
    g.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                   help="XLA-compile the train step (auto: Keras' choice for the backend)")
    g.add_argument("--data-parallel", default="auto", metavar="auto|off|N",
                   help="replicate each trial's model over this machine's GPUs (TensorFlow "
                        "MirroredStrategy, JAX DataParallel); batch_size is per replica, the "
                        "global batch is batch_size x replicas (default auto: all GPUs if 2+)")
    g.add_argument("--role", choices=("chief", "worker"), default=None,
                   help="distributed search: the chief serves the oracle (trains nothing), "
                        "workers run the trials; KERASTUNER_* variables are honoured too")
    g.add_argument("--oracle", metavar="HOST:PORT", default=None,
                   help="the chief's address; the chief may bind 0.0.0.0:PORT. --model both "
                        "also uses PORT+1")
    g.add_argument("--tuner-id", metavar="ID", default=None,
                   help="a worker's stable id (default tuner<SLURM_PROCID> or host-pid); "
                        "restart a dead worker with the same id to resume its trial at once")


def config_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> SearchConfig:
    """Maps parsed options onto a SearchConfig (``command`` records the command line)."""
    return SearchConfig(
        data=args.data, model=args.model, tuner=args.tuner, folds=args.folds,
        max_trials=args.max_trials, max_epochs=args.max_epochs, patience=args.patience,
        min_epochs=getattr(args, "min_epochs", None), ladder=getattr(args, "ladder", True),
        first_rung=getattr(args, "first_rung", 2),
        ladder_brackets=getattr(args, "ladder_brackets", 1),
        max_trial_share=_or_default(getattr(args, "max_trial_share", None), 0.25),
        time_budget_min=args.time_budget, objective=args.objective, image_size=args.image_size,
        color_mode=args.color_mode, positive_class=args.positive_class,
        space_file=args.space_file, seed=args.seed, test_fraction=args.test_fraction,
        max_params=args.max_params, max_gflops=getattr(args, "max_gflops", None),
        run_dir=args.run_dir, overwrite=args.overwrite,
        tensorboard=getattr(args, "tensorboard", "auto"),
        weights=getattr(args, "weights", None),
        quiet=args.quiet, command=list(argv if argv is not None else sys.argv),
        mixed_precision=getattr(args, "mixed_precision", "off"),
        jit_compile=getattr(args, "jit_compile", "auto"),
        data_parallel=str(getattr(args, "data_parallel", "auto")),
        role=getattr(args, "role", None), oracle=getattr(args, "oracle", None),
        tuner_id=getattr(args, "tuner_id", None))


def _or_default(value: float | None, default: float) -> float:
    return default if value is None else value


def option_warnings(args: argparse.Namespace) -> list[str]:
    """Options that were given but will do nothing, as lines for the user."""
    lines = []
    if getattr(args, "max_trial_share", None) is not None and args.time_budget is None:
        lines.append(f"warning: --max-trial-share {args.max_trial_share} only applies with "
                     "--time-budget; without a time budget it is ignored. Add --time-budget "
                     "MINUTES, or leave --max-trial-share out.")
    return lines


def run(args: argparse.Namespace) -> int:
    """Handler: runs the search; exit 0 done or budget spent, 130/143 interrupted.

    The option values are checked (``search.config.validate``) before the engine is imported:
    the engine loads Keras, KerasTuner and the backend (seconds), a typo is refused without.
    """
    from search.config import validate

    config = validate(config_from_args(args))
    for line in option_warnings(args):
        print(line, file=sys.stderr, flush=True)
    if config.role != "worker":  # a worker's run folder is the chief's
        from search.store.run_folder import early_weights_refusal

        early_weights_refusal(Path(config.run_dir), config.weights, config.overwrite)

    from search.engine import run_search_job
    from search.runtime.signals import SearchInterrupted

    try:
        run_search_job(config)
    except SearchInterrupted as exc:
        return exc.exit_code
    return 0

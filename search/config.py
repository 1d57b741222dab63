"""The typed search configuration and its validation (all of it, before any training)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import SearchError
from spaces import DEFAULT_FAMILIES, FAMILIES, METRIC_NAMES
from spaces.budget import DEFAULT_MAX_PARAMS, default_max_gflops, default_max_params
from spaces.metrics import PROBE_OBJECTIVES

# "auto" picks each family's objective from a measurement (README "Objective"):
# - CNN (and transfer): benchmarks/generalisation.py (RESULTS.md): on the shared data, clean
#   val_auc could not tell the augmented basic CNN from the plain one, the geometric probe did
#   (as the held-out folder does), and the other probes gave no consistent signal.
# - ANN: benchmarks/ann_objective.py (RESULTS.md, "ANN objective and ensemble selection"): over
#   12 ANN configurations on the shared data, the photometric probe ranked their AUC on shifted
#   copies of the carved test split best (Spearman 0.61; clean val_auc 0.51, geometric 0.31,
#   and the geometric probe ranked their clean test AUC at -0.46): a dense net on flattened
#   pixels loses to any shift of the film, so the geometric probe measures something else for
#   it than for a CNN.
# Probes score one positive class, so "auto" is val_auc for data with more classes.
AUTO_OBJECTIVE = "auto"
DEFAULT_OBJECTIVE = AUTO_OBJECTIVE
TWO_CLASS_OBJECTIVE = "val_auc_geometric"
AUTO_OBJECTIVES = {"cnn": TWO_CLASS_OBJECTIVE, "transfer": TWO_CLASS_OBJECTIVE,
                   "ann": "val_auc_photometric"}


def resolve_objective(objective: str, n_classes: int, family: str | None = None) -> str:
    """``auto`` -> the family's measured objective (:data:`AUTO_OBJECTIVES`; no family: the
    CNN's) for two classes, ``val_auc`` for more; any other name unchanged."""
    if objective != AUTO_OBJECTIVE:
        return objective
    if n_classes != 2:
        return "val_auc"
    return AUTO_OBJECTIVES.get(family or "cnn", TWO_CLASS_OBJECTIVE)
from spaces.metrics import objective_direction as _space_objective_direction

TUNERS = ("hyperband", "bayesian", "tpe", "random")
COLOR_MODES = ("grayscale", "rgb")


@dataclass
class SearchConfig:
    """Everything one ``search`` needs; field names are run.json's ``config`` keys.

    ``data=None`` means the built-in synthetic data (``data_pipeline.default_data_dir()``).
    """

    data: str | None = None
    model: str = "both"
    tuner: str = "hyperband"
    folds: int = 3
    max_trials: int = 10
    max_epochs: int = 10
    # Hyperband's first round (None: a third of max_epochs,
    # search.tuners.oracles.default_min_epochs);
    # resolved before run.json records it. Unused by bayesian and random.
    min_epochs: int | None = None
    patience: int = 3
    # The successive-halving ladder (search.schedule.ladder): judge every configuration at rungs of
    # fold-epochs and continue only the top third; False trains every fold of every trial.
    ladder: bool = True
    # Epochs of the ladder's first rung, and how many brackets run side by side.
    first_rung: int = 2
    ladder_brackets: int = 1
    # With a time budget: the share of it a trial may spend before a ladder rung compares it
    # with another configuration (search.schedule.cost).
    max_trial_share: float = 0.25
    time_budget_min: float | None = None
    objective: str = DEFAULT_OBJECTIVE
    direction: str = "max"
    # --objective auto: each family's own objective ({family: name}), resolved once when the
    # run starts and recorded in run.json (a resume keeps the recorded ones); None: every
    # family uses `objective`.
    objectives: dict[str, str] | None = None
    image_size: int = 64
    color_mode: str = "grayscale"
    positive_class: str | None = None
    space_file: str | None = None
    seed: int = 42
    test_fraction: float = 0.15
    # None: the default for the image size (spaces.budget); max_gflops 0: no FLOPs limit.
    max_params: int | None = None
    max_gflops: float | None = None
    # GPU box (search.runtime.devices): recorded in run.json, not compared on resume, so a run can
    # be
    # resumed on another machine with other devices.
    mixed_precision: str = "off"
    jit_compile: str = "auto"
    data_parallel: str = "auto"
    run_dir: str = "runs/default"
    # TensorBoard event files (search.watch.tensorboard): "auto" = RUN_DIR/tensorboard, None = off.
    # Recorded in run.json, not compared on resume: logging does not change what a trial means.
    tensorboard: str | None = "auto"
    # The transfer family's backbone weights: "imagenet", a file path (made absolute), "none";
    # None until resolve_weights (then "imagenet" when the transfer family is searched).
    weights: str | None = None
    # sha256 of the --weights file (resolve_weights): a resume matches the file by content.
    weights_sha256: str | None = None
    overwrite: bool = False
    # Distributed search (search.distributed); run control, so not recorded in run.json.
    role: str | None = None
    oracle: str | None = None
    tuner_id: str | None = None
    quiet: bool = False
    command: list[str] = field(default_factory=list)

    def objective_for(self, family: str) -> tuple[str, str]:
        """The family's objective and direction (``objectives`` first, else ``objective``)."""
        name = (self.objectives or {}).get(family, self.objective)
        return name, objective_direction(name) if name != AUTO_OBJECTIVE else "max"

    @property
    def families(self) -> list[str]:
        """The model families to search, in order (``both``: CNN and ANN, not transfer)."""
        return list(DEFAULT_FAMILIES) if self.model == "both" else [self.model]

    def to_record(self, space: dict[str, Any]) -> dict[str, Any]:
        """The ``config`` block of run.json (no run-control flags)."""
        out = dataclasses.asdict(self)
        for key in ("run_dir", "overwrite", "quiet", "command", "role", "oracle", "tuner_id"):
            out.pop(key)
        out["space"] = space
        return out


def valid_objectives() -> list[str]:
    """``val_<metric>`` for every compiled metric (``val_loss`` included) and every shortcut
    probe (``val_auc_geometric``, ..., ``val_auc_robust``; two-class data only)."""
    return [f"val_{m}" for m in METRIC_NAMES] + list(PROBE_OBJECTIVES)


def objective_direction(name: str) -> str:
    """``min`` for losses, ``max`` for every other metric (the spaces' rule, one place)."""
    return _space_objective_direction(name)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SearchError(message)


def resolve_budgets(config: SearchConfig) -> SearchConfig:
    """Fills ``max_params`` and ``max_gflops`` left at None with the image size's defaults."""
    if config.max_params is None:
        config.max_params = default_max_params(config.image_size)
    if config.max_gflops is None:
        config.max_gflops = default_max_gflops(config.image_size)
    return config


def resolve_weights(config: SearchConfig) -> SearchConfig:
    """Fills ``weights`` for the transfer family: ``imagenet`` when not given, a path made
    absolute (so a resume from another folder finds it), with the file's sha256 in
    ``weights_sha256`` (a resume matches the file by content); None without the transfer
    family."""
    config.weights_sha256 = None
    if "transfer" not in config.families:
        config.weights = None
    elif config.weights is None:
        config.weights = "imagenet"
    elif config.weights not in ("imagenet", "none"):
        from spaces.backbones import weights_digest

        config.weights = str(Path(config.weights).expanduser().resolve())
        config.weights_sha256 = weights_digest(config.weights)
    return config


def resolve_min_epochs(config: SearchConfig) -> SearchConfig:
    """Fills Hyperband's ``min_epochs`` left at None; None for the other tuners."""
    from search.tuners.oracles import default_min_epochs

    if config.tuner != "hyperband":
        config.min_epochs = None
    elif config.min_epochs is None:
        config.min_epochs = default_min_epochs(config.max_epochs)
    return config


def tensorboard_dir(config: SearchConfig) -> Path | None:
    """Where the search writes TensorBoard event files, or None when turned off."""
    if not config.tensorboard:
        return None
    if config.tensorboard == "auto":
        return Path(config.run_dir) / "tensorboard"
    return Path(config.tensorboard)


def check_two_classes(class_names: list[str], data: str | Path) -> None:
    """Refuses data with other than two class folders, before any training.

    Everything after the search (export's decision threshold, compare, predict, the shortcut
    probes) scores one positive class, so a search on three or more classes would train for
    hours and then have nothing to export.

    Args:
        class_names: the class folders found (``data_pipeline.discover(data).class_names``).
        data: the data folder, named in the message.

    Raises:
        SearchError: naming the classes found, the folder and the fix.
    """
    if len(class_names) == 2:
        return
    raise SearchError(
        f"--data {data} has {len(class_names)} class folders ({', '.join(class_names)}), but "
        "this service trains two-class classifiers only (one positive class: the exported "
        "model's threshold, compare and predict need it). Fix: point --data at a folder with "
        "exactly two class folders under train/ (and test/, val/), for example NORMAL and "
        "PNEUMONIA, moving the other classes out; --positive-class then picks which of the two "
        "is positive.")


def _weights_refusal(weights: str | None) -> str:
    """Why ``--weights`` is not imagenet, none or a file: a keyword in the wrong case, a
    folder, or no such path."""
    keywords = "Give imagenet (Keras' download cache), the path of a backbone weights file " \
               "(.weights.h5), or none (train from scratch)."
    if str(weights).lower() in ("imagenet", "none"):
        return (f"--weights {weights}: the keywords are lower case. Use --weights "
                f"{str(weights).lower()}.")
    path = Path(str(weights)).expanduser()
    if path.is_dir():
        return f"--weights {weights} is a folder, not a weights file. {keywords}"
    return f"--weights {weights}: no such file. {keywords}"


def validate(config: SearchConfig) -> SearchConfig:
    """Checks every value and fills ``direction``; raises SearchError naming the fix.

    The data folder and the space file are checked by the engine (they need IO); this checks
    the names and numbers, so a typo fails in milliseconds.
    """
    _require(config.model in (*FAMILIES, "both"),
             f"--model must be one of {', '.join(FAMILIES)}, both; got {config.model!r}.")
    _require(config.weights is None or "transfer" in config.families,
             f"--weights {config.weights} sets the pretrained backbone of the transfer family, "
             f"but --model {config.model} does not search it (both = cnn and ann). Add "
             "--model transfer, or leave --weights out.")
    _require(config.weights is None or config.weights in ("imagenet", "none")
             or Path(config.weights).expanduser().is_file(), _weights_refusal(config.weights))
    _require(config.tuner in TUNERS,
             f"--tuner must be one of {', '.join(TUNERS)}; got {config.tuner!r}.")
    valid = valid_objectives()
    _require(config.objective in valid or config.objective == AUTO_OBJECTIVE,
             f"--objective {config.objective!r} is not a compiled validation metric. Valid "
             f"objectives: {', '.join(valid)} (direction is inferred: min for val_loss, max "
             "for the others).")
    # Both resolutions of "auto" are maximised.
    config.direction = ("max" if config.objective == AUTO_OBJECTIVE
                        else objective_direction(config.objective))
    _require(isinstance(config.folds, int) and 1 <= config.folds <= 20,
             f"--folds must be an integer from 1 (one grouped hold-out) to 20; got {config.folds}.")
    _require(config.max_trials >= 1, f"--max-trials must be at least 1; got {config.max_trials}.")
    _require(config.max_epochs >= 1, f"--max-epochs must be at least 1; got {config.max_epochs}.")
    _require(config.min_epochs is None or 1 <= config.min_epochs <= config.max_epochs,
             f"--min-epochs must be from 1 to --max-epochs ({config.max_epochs}); got "
             f"{config.min_epochs}. It is Hyperband's first round; leave it out for a third of "
             "--max-epochs.")
    _require(config.patience >= 1, f"--patience must be at least 1; got {config.patience}.")
    # Above half of --max-epochs the first fold simply has no rung inside it
    # (search.schedule.ladder):
    # only its end is judged. So any positive number is valid with any --max-epochs.
    _require(isinstance(config.first_rung, int) and config.first_rung >= 1,
             f"--first-rung must be a whole number of epochs, at least 1; got "
             f"{config.first_rung}. It is when the ladder first compares configurations; leave "
             "it out for 2, or use --no-ladder to train every fold of every configuration.")
    _require(isinstance(config.ladder_brackets, int) and 1 <= config.ladder_brackets <= 4,
             f"--ladder-brackets must be from 1 to 4; got {config.ladder_brackets}. Bracket b "
             "is first judged at rung b, so more brackets protect slow starters at the cost of "
             "fewer configurations judged.")
    _require(isinstance(config.max_trial_share, (int, float))
             and 0.0 < config.max_trial_share <= 1.0,  # NaN fails both comparisons
             f"--max-trial-share must be a fraction of the time budget above 0 and at most 1 "
             f"(1 turns the rule off); got {config.max_trial_share}.")
    _require(config.time_budget_min is None or (math.isfinite(config.time_budget_min)
                                                 and config.time_budget_min > 0),
             f"--time-budget must be a positive, finite number of minutes; got "
             f"{config.time_budget_min}. Leave it out for no time limit.")
    _require(8 <= config.image_size <= 1024,
             f"--image-size must be between 8 and 1024 pixels; got {config.image_size}.")
    _require(config.color_mode in COLOR_MODES,
             f"--color-mode must be grayscale or rgb; got {config.color_mode!r}.")
    _require(0.0 < config.test_fraction < 0.9,
             f"--test-fraction must be between 0 and 0.9; got {config.test_fraction}.")
    _require(config.seed >= 0, f"--seed must be a non-negative integer; got {config.seed}.")
    _require(config.max_params is None or config.max_params >= 1000,
             f"--max-params must be at least 1000; got {config.max_params}.")
    _require(config.max_gflops is None or config.max_gflops >= 0,
             f"--max-gflops must be a positive number of GFLOPs per image, or 0 for no limit; "
             f"got {config.max_gflops}.")
    _require(config.mixed_precision in ("off", "auto", "float16", "bfloat16"),
             f"--mixed-precision must be off, auto, float16 or bfloat16; got "
             f"{config.mixed_precision!r}.")
    _require(config.jit_compile in ("auto", "on", "off"),
             f"--jit-compile must be auto, on or off; got {config.jit_compile!r}.")
    dp = str(config.data_parallel)
    _require(dp in ("auto", "off") or (dp.isdigit() and int(dp) >= 1),
             f"--data-parallel must be auto, off or a number of GPUs (>= 1); got {dp!r}.")
    from search.distributed import resolve_role

    role = resolve_role(config.role, config.oracle, config.tuner_id)  # raises SearchError
    _require(not (role is not None and not role.is_chief and config.overwrite),
             "--overwrite is refused for a worker: only the chief may start a run afresh "
             "(add --overwrite to the chief's command, not the workers').")
    if config.space_file is not None:
        path = Path(config.space_file)
        _require(path.is_file(), f"--space {path}: no such file. Give a TOML file (see "
                 "`run_search.py space --help` for the format) or leave --space out.")
    if config.data is not None:
        path = Path(config.data)
        _require(path.is_dir(), f"--data {path}: " + ("is a file, not a folder" if path.exists()
                 else "no such folder") + ". Give the chest_xray folder (with train/ and class "
                 "sub-folders) or leave --data out for the built-in synthetic data.")
    run_dir = Path(config.run_dir)
    _require(not run_dir.exists() or run_dir.is_dir(),
             f"--run-dir {run_dir} is a file; a run folder must be a folder. Choose another "
             "--run-dir (for example runs/<name>).")
    return config

"""What every family shares: hyperparameter registration, the output layer, compile, budget, fit.

Activations: ``relu`` (the notes' default), ``elu`` (named by the notes; smooth, non-zero for
negative inputs, so fewer dead units in deep dense stacks) and ``gelu`` (the smooth ReLU of modern
conv nets, cheap and stable). ``selu`` is left out on purpose: its self-normalisation needs
``lecun_normal`` initialisation, AlphaDropout and no batch norm, which the dropout and batch-norm
dimensions of this space would silently break; ``tanh``/``sigmoid`` saturate in deep stacks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import keras_tuner as kt

from spaces.budget import DEFAULT_MAX_PARAMS
from spaces.metrics import make_metrics
from spaces.preprocess import add_preprocessing
from spaces.space import SpaceConfig, SpaceError, load_space


# Training-time dimensions: applied by fit(), not by the layers.
# Batch-norm momentum of the CNN and ANN bodies: 0.9, not Keras' 0.99. At 0.99 the moving
# statistics average over ~100 steps, so for the first epochs of a fold the inference-mode
# statistics lag far behind the weights and the validation AUC sits low although training
# learns: a "slow starter" that an early ladder rung would stop. Measured on the shared data
# (benchmarks/ladder_curves.py, benchmarks/RESULTS.md "The ladder"): the CNN with batch norm
# after the activation had geometric-probe AUC 0.82, 0.66, 0.78, 0.79 in its first four epochs
# at 0.99 and 0.95, 0.97, 0.97, 0.98 at 0.9, and both ended at 0.985-0.988.
BN_MOMENTUM = 0.9


def batch_norm(name: str):
    """A BatchNormalization layer with the space's :data:`BN_MOMENTUM`."""
    import keras

    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


FIT_DIMS = ("batch_size", "augmentation", "augmentation_strength", "augmentation_ranges",
            "class_weights", "lr_schedule", "lr_decay_epochs")


def register_values(hp: kt.HyperParameters, space: SpaceConfig, family: str) -> dict[str, Any]:
    """Registers every dimension of ``family`` with ``hp`` and returns the current values.

    Every dimension is registered on every build (inactive ones inside their conditional scopes,
    where KerasTuner returns None), so the oracle knows the whole space from the first trial.
    A dimension whose condition can never hold under this space (say ``momentum`` when the user
    fixed ``optimizer = "adam"``) is not registered at all.
    """
    values: dict[str, Any] = {}
    dims = space.dims(family)
    for name, dim in dims.items():
        scopes = [(c.parent, c.active_values(dims[c.parent])) for c in space.conditions(family, name)]
        if any(not active for _, active in scopes):
            values[name] = None
            continue
        with contextlib.ExitStack() as stack:
            for parent, active in scopes:
                stack.enter_context(hp.conditional_scope(parent, active))
            if dim.fixed:
                value = hp.Fixed(name, dim.default)
            elif dim.type == "int":
                value = hp.Int(name, int(dim.min), int(dim.max), step=dim.step and int(dim.step),
                               sampling=dim.sampling, default=dim.default)
            elif dim.type == "float":
                value = hp.Float(name, dim.min, dim.max, step=dim.step, sampling=dim.sampling,
                                 default=dim.default)
            elif dim.type == "choice":
                value = hp.Choice(name, list(dim.values), default=dim.default)
            else:
                value = hp.Boolean(name, default=dim.default)
        values[name] = value
    return values


class BaseHyperModel(kt.HyperModel):
    """Shared validation, output, compile, parameter budget and fit of the two families."""

    family = ""
    # The fix a budget refusal names, per family.
    params_hint = "fewer layers, smaller base width, global_average head"
    flops_hint = "fewer or narrower blocks at full resolution, no decreasing filter hierarchy"

    def __init__(self, input_shape: Sequence[int], num_classes: int = 2,
                 class_counts: Sequence[int] | None = None, space: SpaceConfig | None = None,
                 max_params: int = DEFAULT_MAX_PARAMS,
                 max_gflops: float | None = None) -> None:
        """Validates the fixed facts of a search.

        Args:
            input_shape: ``(S, S, C)`` of the images, C = 1 (grayscale) or 3 (rgb).
            num_classes: Number of classes (>= 2); 2 gives one sigmoid unit, more a softmax.
            class_counts: Training images per class (all > 0), for the output-bias initialisation.
                None makes ``output_bias`` initialise to zero.
            space: The effective search space; None for the shipped defaults.
            max_params: Largest parameter count a trial may build.
            max_gflops: Largest forward GFLOPs per image a trial may build (None: no limit).

        Raises:
            SpaceError: Any argument breaks the rule stated in its message.
        """
        super().__init__(name=self.family, tunable=True)
        shape = tuple(input_shape)
        if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape) \
                or shape[2] not in (1, 3):
            raise SpaceError(f"input_shape must be (size, size, channels) with positive ints and "
                             f"1 or 3 channels, got {input_shape!r}.")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise SpaceError(f"num_classes must be an int >= 2, got {num_classes!r}.")
        if class_counts is not None:
            counts = list(class_counts)
            if len(counts) != num_classes or not all(int(c) == c and c > 0 for c in counts):
                raise SpaceError(f"class_counts must give one positive count per class "
                                 f"({num_classes}), got {class_counts!r}; every class needs images.")
            class_counts = [int(c) for c in counts]
        if not isinstance(max_params, int) or max_params <= 0:
            raise SpaceError(f"max_params must be a positive int, got {max_params!r}; "
                             f"pass e.g. --max-params {DEFAULT_MAX_PARAMS}.")
        if max_gflops is not None and (isinstance(max_gflops, bool) or not isinstance(
                max_gflops, (int, float)) or not max_gflops > 0):
            raise SpaceError(f"max_gflops must be a positive number or None, got "
                             f"{max_gflops!r}; pass e.g. --max-gflops 1.0.")
        if space is not None and not isinstance(space, SpaceConfig):
            raise SpaceError(f"space must be a SpaceConfig from load_space(), got {type(space)}.")
        self.input_shape = shape
        self.num_classes = num_classes
        self.class_counts = class_counts
        self.space = space if space is not None else load_space(None)
        # Augmentation is part of the model (random layers, active in training only), so it
        # runs inside the compiled train step on the accelerator. False builds the same model
        # without them, for exports (results/export.py): same weights, nothing random inside.
        self.with_augmentation = True
        self.max_params = max_params
        self.max_gflops = None if max_gflops is None else float(max_gflops)

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        """Registers the whole space with ``hp`` without building a model."""
        register_values(hp, self.space, self.family)

    # -- build ---------------------------------------------------------------------------------
    def build(self, hp: kt.HyperParameters) -> Any:
        """Builds and compiles the model for ``hp`` (pure: no IO, no data).

        Raises:
            keras_tuner.errors.FailedTrialError: The model exceeds ``max_params``.
        """
        import keras

        values = register_values(hp, self.space, self.family)
        # Refused before any layer exists: allocating and initialising an over-budget model (a
        # 100M-parameter ANN takes seconds) would cost more than the trial it replaces.
        self._check_budget(self._count(values), values)
        self._check_flops(values)
        inputs = keras.Input(shape=self.input_shape, name="image")
        x = inputs
        if values["augmentation"] and self.with_augmentation:
            import data_pipeline

            # On raw 0..255 pixels, as the layers' value ranges expect. Unseeded: the fold fit
            # seeds Keras (keras.utils.set_random_seed) before building, which fixes them.
            x = data_pipeline.make_augmentation(
                values["augmentation_strength"], None,
                ranges=values["augmentation_ranges"] or "mild")(x)
        # Models take raw 0..255 pixels, so an exported model needs no preprocessing.
        x = keras.layers.Rescaling(1.0 / 255, name="rescale")(x)
        # Shortcut-breaking preprocessing lives in the model too, so exports stay raw-pixel.
        x = add_preprocessing(x, values, self.input_shape)
        x = self.build_body(x, values)
        units = 1 if self.num_classes == 2 else self.num_classes
        outputs = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax",
                                     name="output", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name=self.family)
        self._check_budget(model.count_params(), values)  # the built model has the last word
        if values["output_bias"]:
            model.get_layer("output").bias.assign(self.output_bias_values())
        model.compile(optimizer=make_optimizer(values), loss=self.loss_name(),
                      metrics=make_metrics(self.num_classes))
        return model

    def build_body(self, x: Any, values: dict[str, Any]) -> Any:
        """Family-specific layers between the rescaling and the output layer."""
        raise NotImplementedError

    def body_params(self, values: dict[str, Any]) -> tuple[int, int]:
        """Parameter count of :meth:`build_body`'s layers and the width it outputs."""
        raise NotImplementedError

    def count_params(self, hp: kt.HyperParameters) -> int:
        """The parameter count ``build(hp)`` would give, computed without Keras.

        Counts what ``model.count_params()`` counts, batch-norm moving statistics included.
        """
        return self._count(register_values(hp, self.space, self.family))

    def _count(self, values: dict[str, Any]) -> int:
        body, width = self.body_params(values)
        units = 1 if self.num_classes == 2 else self.num_classes
        return body + dense_params(width, units)

    def _check_budget(self, n_params: int, values: dict[str, Any]) -> None:
        if n_params > self.max_params:
            shown = _architecture(values)
            raise kt.errors.FailedTrialError(
                f"{self.family} model has {n_params:,} parameters, over the limit of "
                f"{self.max_params:,} (input {self.input_shape}, {shown}). Raise --max-params or "
                f"narrow the space ({self.params_hint})."
            )

    def refusal(self, hp: kt.HyperParameters) -> str | None:
        """Why ``build(hp)`` would be refused (over ``max_params`` or ``max_gflops``), or None.

        Pure arithmetic on the hyperparameters: nothing is built. The search's oracles call it
        on every draw so over-budget configurations never become trials.
        """
        values = register_values(hp, self.space, self.family)
        try:
            self._check_budget(self._count(values), values)
            self._check_flops(values)
        except kt.errors.FailedTrialError as err:
            return str(err)
        return None

    def body_flops(self, values: dict[str, Any]) -> tuple[int, int]:
        """Forward FLOPs per image of :meth:`build_body` and the width it outputs."""
        raise NotImplementedError

    def gflops(self, hp: kt.HyperParameters) -> float:
        """Forward GFLOPs per image of ``build(hp)`` (2 x multiply-adds of conv and dense
        layers; activations, pooling and normalisation are left out as comparatively free)."""
        return self._gflops(register_values(hp, self.space, self.family))

    def _gflops(self, values: dict[str, Any]) -> float:
        flops, width = self.body_flops(values)
        units = 1 if self.num_classes == 2 else self.num_classes
        return (flops + 2 * width * units) / 1e9

    def _check_flops(self, values: dict[str, Any]) -> None:
        if self.max_gflops is None:
            return
        g = self._gflops(values)
        if g > self.max_gflops:
            shown = _architecture(values)
            raise kt.errors.FailedTrialError(
                f"{self.family} model needs {g:.2f} GFLOPs per image, over the limit of "
                f"{self.max_gflops:g} (input {self.input_shape}, {shown}): it would train for "
                f"a very long time. Raise --max-gflops or narrow the space ({self.flops_hint}).")

    def loss_name(self) -> str:
        return "binary_crossentropy" if self.num_classes == 2 else "sparse_categorical_crossentropy"

    def output_bias_values(self) -> list[float]:
        """log(pos/neg) for a sigmoid; log class priors for a softmax; zeros without counts."""
        units = 1 if self.num_classes == 2 else self.num_classes
        if self.class_counts is None:
            return [0.0] * units
        if units == 1:
            return [math.log(self.class_counts[1] / self.class_counts[0])]
        total = sum(self.class_counts)
        return [math.log(c / total) for c in self.class_counts]

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, hp: kt.HyperParameters, model: Any, x: Any, y: Any, *, validation_data: Any,
            epochs: int, initial_epoch: int = 0, callbacks: list[Any] | None = None,
            verbose: int = 0, seed: int | None = None, **kwargs: Any) -> Any:
        """Trains ``model`` with the fit-time hyperparameters of ``hp``.

        Args:
            hp: The trial's hyperparameters (the same object ``build`` saw).
            model: The model from :meth:`build`.
            x: Training images, uint8 or float ``(N, S, S, C)`` with raw 0..255 values.
            y: Integer labels ``(N,)``.
            validation_data: ``(x_val, y_val)`` (batched without augmentation) or a PyDataset.
            epochs: Index of the last epoch (Keras semantics, with ``initial_epoch``).
            initial_epoch: First epoch; the learning-rate schedule uses absolute epochs, so a
                resumed or Hyperband-continued fit keeps decaying from where it was.
            callbacks: Extra callbacks (early stopping, checkpoints, progress).
            verbose: Keras verbosity.
            seed: Seed for shuffling (augmentation is seeded by the build, see ``build``).
            **kwargs: Passed to ``model.fit``; ``batch_size``, ``class_weight``, ``shuffle`` and
                ``sample_weight`` are owned by the hyperparameters and refused.

        Returns:
            The Keras ``History``.
        """
        import keras

        values = register_values(hp, self.space, self.family)
        train, validation_data = self.fit_inputs(values, x, y, validation_data, seed, kwargs)
        callbacks = list(callbacks or [])
        schedule = make_schedule(values)
        if schedule is not None:
            callbacks.append(keras.callbacks.LearningRateScheduler(schedule))
        return model.fit(**train, validation_data=validation_data, epochs=epochs,
                         initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                         **kwargs)

    @staticmethod
    def fit_inputs(values: dict[str, Any], x: Any, y: Any, validation_data: Any,
                    seed: int | None, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The training inputs of :meth:`fit` (shared by every family).

        The arrays go to Keras' own array adapter (``fit(x, y, batch_size, shuffle=True)``), not
        through a Python batch generator: on 2 CPU cores that halves the seconds per epoch
        (``benchmarks/fit_feed.py``: 1.75x). The uint8 images stay uint8 until the model's input
        converts them, so no float copy of the training set is made.

        Returns:
            ``model.fit`` keyword arguments for the training data (``x``, ``y``,
            ``batch_size``, ``shuffle``, ``sample_weight``, ``validation_batch_size``), and the
            validation data (arrays, or the caller's PyDataset unchanged).

        Raises:
            TypeError: ``kwargs`` holds a fit argument the hyperparameters own.
        """
        import keras
        import numpy as np

        import data_pipeline

        owned = sorted({"batch_size", "class_weight", "shuffle", "sample_weight"} & set(kwargs))
        if owned:
            raise TypeError(f"fit() sets {owned} from the hyperparameters; do not pass them.")
        if seed is not None:
            # Keras shuffles arrays with its global generators (NumPy's or TensorFlow's);
            # seeding them here makes the batch order a function of ``seed`` alone. Layers'
            # own random draws (augmentation, dropout) were seeded when the model was built.
            keras.utils.set_random_seed(int(seed))
        # Augmentation, when on, is the model's own first layers (see build), so the batches
        # carry raw pixels only; a model built without them (an export) is not augmented.
        labels = np.asarray(y).astype(np.float32)
        batch = int(values["batch_size"])
        train: dict[str, Any] = {"x": np.asarray(x), "y": labels, "batch_size": batch,
                                 "shuffle": True}
        if values["class_weights"]:
            train["sample_weight"] = data_pipeline.sample_weights(
                labels, data_pipeline.class_weights(labels))
        if isinstance(validation_data, (tuple, list)):
            validation_data = (np.asarray(validation_data[0]),
                               np.asarray(validation_data[1]).astype(np.float32))
            train["validation_batch_size"] = batch
        return train, validation_data


def _architecture(values: dict[str, Any]) -> dict[str, Any]:
    """The active, non-training values: what a budget refusal shows of the model."""
    return {k: v for k, v in values.items() if v is not None and k not in FIT_DIMS}


def dense_params(inputs: int, units: int, *, bias: bool = True) -> int:
    """Weights of a dense layer from ``inputs`` to ``units``."""
    return inputs * units + (units if bias else 0)


def dense_stack_flops(width: int, units: Sequence[int]) -> tuple[int, int]:
    """Forward FLOPs per image of dense layers of ``units`` after an input of ``width``, and
    the width they output (2 x multiply-adds)."""
    total = 0
    for n in units:
        total += 2 * width * n
        width = n
    return total, width


def make_optimizer(values: dict[str, Any], scale: float = 1.0) -> Any:
    """The optimizer named by ``values`` at the initial learning rate (times ``scale``: the
    transfer family's fine-tuning stage)."""
    import keras

    lr = float(values["learning_rate"]) * scale
    name = values["optimizer"]
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=float(values["momentum"]))
    raise ValueError(f"unknown optimizer {name!r}")


class ExponentialDecay:
    """The notes' schedule ``lr0 * 0.1 ** (epoch / s)``; picklable, unlike a closure."""

    def __init__(self, lr0: float, s: int) -> None:
        self.lr0, self.s = float(lr0), int(s)

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        return self.lr0 * 0.1 ** (epoch / self.s)


def make_schedule(values: dict[str, Any], scale: float = 1.0) -> ExponentialDecay | None:
    """The per-epoch learning-rate function (its rates times ``scale``), or None for a
    constant rate."""
    if values["lr_schedule"] == "exponential":
        return ExponentialDecay(values["learning_rate"] * scale, values["lr_decay_epochs"])
    return None

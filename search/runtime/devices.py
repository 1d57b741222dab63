"""The GPU box: which devices a search uses, mixed precision, XLA, data-parallel trials.

Everything here is chosen once per process, before the first model is built:

* :func:`describe_devices` - the backend and the devices it sees, printed at search start.
* :func:`set_mixed_precision` - Keras' global dtype policy (``mixed_float16`` for GPUs,
  ``mixed_bfloat16`` for CPUs/TPUs/Ampere+). The spaces build their output layer with
  ``dtype="float32"`` so the sigmoid and the loss stay in float32.
* :func:`setup_data_parallel` - one trial's model replicated over several devices: TensorFlow's
  ``MirroredStrategy`` (also handed to KerasTuner as ``distribution_strategy``) or Keras'
  ``keras.distribution.DataParallel`` under JAX. Torch: one device (Keras has no in-process
  multi-GPU for torch).
* :class:`ScaledHyperModel` - wraps a spaces HyperModel: builds under the strategy scope, applies
  ``--jit-compile``, and multiplies the ``batch_size`` hyperparameter by the replica count so each
  replica sees the batch size the hyperparameter names (the global batch is logged).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import keras_tuner as kt

from search.errors import SearchError

MIXED_CHOICES = ("off", "auto", "float16", "bfloat16")
JIT_CHOICES = ("auto", "on", "off")


def backend_name() -> str:
    """The Keras backend (``KERAS_BACKEND``), without importing Keras twice."""
    import keras

    return keras.backend.backend()


def accelerators() -> list[str]:
    """Names of the GPUs/TPUs the current backend can use (empty on a CPU machine)."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU")
                + tf.config.list_logical_devices("TPU")]
    if name == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                    for i in range(torch.cuda.device_count())]
        return []
    return []


def describe_devices() -> str:
    """One paragraph: backend, library version, devices, dtype policy, distribution.

    Returns:
        e.g. ``"backend jax 0.4.30 (keras 3.15.1): devices [CudaDevice(id=0)], 1 GPU;
        dtype policy mixed_bfloat16; data parallel off"``.
    """
    import keras

    name = backend_name()
    version, devices = "?", "?"
    try:
        if name == "tensorflow":
            import tensorflow as tf

            version = tf.__version__
            devices = ", ".join(d.name for d in tf.config.list_logical_devices()) or "none"
        elif name == "jax":
            import jax

            version = jax.__version__
            devices = ", ".join(str(d) for d in jax.devices())
        elif name == "torch":
            import torch

            version = torch.__version__
            devices = (", ".join(accelerators()) if torch.cuda.is_available()
                       else f"cpu ({torch.get_num_threads()} threads)")
    except Exception as err:  # noqa: BLE001 - a description must never stop a search
        devices = f"unavailable ({err!r})"
    acc = accelerators() if devices != "?" else []
    kind = f"{len(acc)} accelerator(s)" if acc else "no GPU: training runs on the CPU"
    policy = keras.config.dtype_policy().name
    dist = "off"
    with contextlib.suppress(Exception):
        current = keras.distribution.distribution()
        if current is not None:
            dist = f"{type(current).__name__} over {len(current.device_mesh.devices.flatten())}"
    return (f"backend {name} {version} (keras {keras.__version__}): devices [{devices}]; {kind}; "
            f"dtype policy {policy}; keras distribution {dist}")


def set_mixed_precision(mode: str | None) -> str:
    """Sets Keras' global dtype policy; returns the policy name in force.

    Args:
        mode: ``off``/None (float32), ``float16``, ``bfloat16``, or ``auto`` (float16 on a GPU
            before Ampere is unknown to us, so: bfloat16 when no GPU, float16 with one).

    Raises:
        SearchError: for an unknown mode.
    """
    import keras

    mode = (mode or "off").lower()
    if mode not in MIXED_CHOICES:
        raise SearchError(f"--mixed-precision {mode!r} is not one of {', '.join(MIXED_CHOICES)}.")
    if mode == "off":
        keras.config.set_dtype_policy("float32")
        return "float32"
    if mode == "auto":
        mode = "float16" if accelerators() else "bfloat16"
    policy = f"mixed_{mode}"
    # Keras wraps the optimizer in a LossScaleOptimizer for mixed_float16 at compile time, so
    # small float16 gradients do not underflow; bfloat16 has float32's range and needs none.
    keras.config.set_dtype_policy(policy)
    return policy


def jit_compile_value(mode: str | bool | None) -> str | bool:
    """Maps ``--jit-compile auto|on|off`` to the value of ``model.jit_compile``."""
    if isinstance(mode, bool):
        return mode
    mode = (mode or "auto").lower()
    if mode not in JIT_CHOICES:
        raise SearchError(f"--jit-compile {mode!r} is not one of {', '.join(JIT_CHOICES)}.")
    return {"auto": "auto", "on": True, "off": False}[mode]


@dataclass
class DataParallelPlan:
    """How one trial's training is spread over devices.

    Attributes:
        replicas: Number of model replicas (1 = no data parallelism).
        kind: ``"none"``, ``"MirroredStrategy"`` or ``"DataParallel"``.
        devices: The devices used.
        strategy: The ``tf.distribute`` strategy (TensorFlow only) to build models under and to
            hand to KerasTuner as ``distribution_strategy``.
    """

    replicas: int = 1
    kind: str = "none"
    devices: list[str] = field(default_factory=list)
    strategy: Any = None

    def describe(self, batch_hint: str = "batch_size") -> str:
        if self.replicas <= 1:
            return "data parallel: off (one device per trial)"
        return (f"data parallel: {self.kind} over {self.replicas} replicas "
                f"({', '.join(self.devices)}); global batch = {batch_hint} x {self.replicas}")

    def scope(self) -> contextlib.AbstractContextManager:
        """The context to build (and compile) models in."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def setup_data_parallel(mode: str | int | None = "auto", *, use_cpu: bool = False
                        ) -> DataParallelPlan:
    """Chooses and installs data parallelism for the trials of this process.

    Args:
        mode: ``"auto"`` (all accelerators when there are two or more), ``"off"``, or a number
            of devices to use.
        use_cpu: Replicate over CPU devices when there is no accelerator (tests: TensorFlow
            logical CPUs, or JAX with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``).

    Returns:
        The plan; under JAX the Keras distribution is set globally as a side effect.

    Raises:
        SearchError: when more devices are asked for than exist, or on torch with N > 1.
    """
    mode = "auto" if mode is None else mode
    if mode == "off":
        return DataParallelPlan()
    name = backend_name()
    wanted = None if mode == "auto" else int(mode)
    if name == "tensorflow":
        import tensorflow as tf

        devs = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devs and use_cpu:
            devs = [d.name for d in tf.config.list_logical_devices("CPU")]
        devs = _pick(devs, wanted)
        if len(devs) < 2:
            return DataParallelPlan(devices=devs)
        strategy = tf.distribute.MirroredStrategy(devices=devs)
        return DataParallelPlan(strategy.num_replicas_in_sync, "MirroredStrategy", devs, strategy)
    if name == "jax":
        import jax
        import keras

        devs = [d for d in jax.devices() if d.platform != "cpu"]
        if not devs and use_cpu:
            devs = jax.devices("cpu")
        devs = _pick(devs, wanted)
        if len(devs) < 2:
            return DataParallelPlan(devices=[str(d) for d in devs])
        names = [f"{d.platform}:{d.id}" for d in devs]
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=names))
        return DataParallelPlan(len(devs), "DataParallel", names)
    if wanted not in (None, 1):
        raise SearchError(
            f"--data-parallel {mode} is not available with KERAS_BACKEND={name}: Keras has no "
            "in-process multi-device training for this backend. Use KERAS_BACKEND=jax or "
            "tensorflow for several GPUs, or run one worker per GPU (--role worker with "
            "CUDA_VISIBLE_DEVICES) to use them for parallel trials instead."
        )
    return DataParallelPlan()


def _pick(devices: list[Any], wanted: int | None) -> list[Any]:
    if wanted is None:
        return devices
    if wanted > len(devices):
        raise SearchError(
            f"--data-parallel {wanted} asks for more devices than this machine shows "
            f"({len(devices)}: {', '.join(map(str, devices)) or 'none'}). Use 'auto' or at most "
            f"{len(devices)}."
        )
    return devices[:wanted]


class ScaledHyperModel(kt.HyperModel):
    """A spaces HyperModel adapted to the device plan (everything else is delegated).

    * ``build`` runs under the strategy scope and sets ``model.jit_compile``;
    * ``fit`` multiplies the ``batch_size`` hyperparameter by the replica count, on a copy of
      the hyperparameters, so the recorded value stays the per-replica batch, and trims the
      training and validation arrays to a multiple of the replica count.

    Args:
        inner: The spaces HyperModel.
        plan: The data-parallel plan.
        jit_compile: ``"auto"``, True or False (see :func:`jit_compile_value`).
    """

    def __init__(self, inner: kt.HyperModel, plan: DataParallelPlan | None = None,
                 jit_compile: str | bool = "auto"):
        super().__init__(name=inner.name, tunable=inner.tunable)
        self.inner = inner
        self.plan = plan or DataParallelPlan()
        self.jit_compile = jit_compile

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this wrapper lacks (input_shape, space, family, ...).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        self.inner.declare_hyperparameters(hp)

    def build(self, hp: kt.HyperParameters) -> Any:
        with self.plan.scope():
            model = self.inner.build(hp)
        if self.jit_compile != "auto":
            model.jit_compile = self.jit_compile
        if self.plan.replicas > 1:
            model.evaluate = _trimming(model.evaluate, self.plan.replicas)
        return model

    def fit(self, hp: kt.HyperParameters, model: Any, x: Any, y: Any, *args: Any,
            **kwargs: Any) -> Any:
        n = self.plan.replicas
        if n > 1 and "batch_size" in hp.values:
            hp = hp.copy()
            hp.values["batch_size"] = int(hp.values["batch_size"]) * n
        if n > 1:
            # Each batch, the last one included, must divide by the replica count: JAX refuses
            # to shard it otherwise, and MirroredStrategy hands an empty batch to a replica (a
            # 1-image last batch over 2 CPUs failed in TF's convolution). Drop at most n - 1
            # images (the same ones every epoch).
            x, y = x[: len(x) // n * n], y[: len(y) // n * n]
            val = kwargs.get("validation_data")
            if isinstance(val, (tuple, list)) and len(val) == 2:
                kwargs["validation_data"] = (val[0][: len(val[0]) // n * n],
                                             val[1][: len(val[1]) // n * n])
        # Under the strategy scope: the transfer family recompiles between its two stages
        # inside fit, and the new optimizer's variables must be mirrored like the first's.
        with self.plan.scope():
            return self.inner.fit(hp, model, x, y, *args, **kwargs)


def _trimming(evaluate: Any, n: int) -> Any:
    """``model.evaluate`` on arrays cut to a multiple of ``n`` (see ScaledHyperModel.fit).

    The search evaluates a Hyperband-continued model on the validation arrays before training;
    under data parallelism its last batch must divide by the replica count too.
    """

    def wrapped(x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        if hasattr(x, "__len__") and hasattr(y, "__len__") and not isinstance(x, dict):
            x, y = x[: len(x) // n * n], y[: len(y) // n * n]
        return evaluate(x, y, *args, **kwargs)

    return wrapped


@dataclass
class ScaleOptions:
    """The GPU-box options of ``run_search.py search``."""

    mixed_precision: str = "off"
    jit_compile: str = "auto"
    data_parallel: str = "auto"


def prepare(options: ScaleOptions, *, use_cpu_replicas: bool = False
            ) -> tuple[DataParallelPlan, list[str]]:
    """Applies the options once per process; returns the plan and the lines to log.

    The lines state the backend and devices, the dtype policy, XLA, and the replica count with
    the resulting global batch size.
    """
    policy = set_mixed_precision(options.mixed_precision)
    plan = setup_data_parallel(options.data_parallel, use_cpu=use_cpu_replicas)
    jit = jit_compile_value(options.jit_compile)
    lines = [describe_devices(),
             f"precision: {policy}" + (" (output layer float32)" if policy != "float32" else ""),
             f"jit_compile: {jit}",
             plan.describe()]
    if policy == "mixed_float16" and not accelerators():
        lines.append("warning: float16 on a CPU is slow; use --mixed-precision bfloat16 or off")
    return plan, lines


@contextlib.contextmanager
def forced_host_devices(n: int) -> Iterator[None]:
    """Sets ``XLA_FLAGS`` so JAX shows ``n`` CPU devices (must precede the first JAX import)."""
    old = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{old or ''} --xla_force_host_platform_device_count={n}".strip()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = old

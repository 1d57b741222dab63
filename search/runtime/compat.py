"""The one seam to private parts of KerasTuner, Keras and TensorFlow the service relies on.

KerasTuner 1.4 exposes no public hooks for what the service changes (atomic saves, a retrying
gRPC client, a liveness-aware chief, quiet failed trials), and TensorFlow none for the memory a
traced train step leaves behind. Every touch of such a private name goes through one function
here, with the reason beside it, so an upgrade has one file to read and :func:`check_supported`
refuses, at start-up, a version that lacks one (naming it) instead of changing behaviour
silently (a memory guard that quietly does nothing, a worker that no longer retries).

Importing this module is cheap: KerasTuner and TensorFlow are imported inside the functions.

**Overridden seams.** Subclasses elsewhere override base methods that are not documented as
extension points; they stay in their modules (the override is the whole point), and
:data:`OVERRIDDEN` lists them so :func:`missing_internals` checks that each base method still
exists:

* ``search/tuners/oracles.py`` (``CappedOracleMixin`` and the capped oracles):
``Oracle.populate_space``,
  ``_random_values``, ``create_trial``, ``get_best_trials``, ``reload``, ``get_state``,
  ``set_state``; ``HyperbandOracle._start_new_bracket`` (and its ``_brackets`` /
  ``_current_iteration`` state); ``BayesianOptimizationOracle._vectorize_trials``, with its
  helpers ``_random_populate_space``, ``_get_hp_bounds``, ``_vector_to_values``,
  ``_nonfixed_space`` and attributes ``gpr``, ``_random_state``.
* ``search/tuners/tpe.py`` (``CappedTPEOracle``): ``Oracle.populate_space``, ``get_state``,
  ``set_state``; it reads the oracle's ``seed`` and its trials' ``hyperparameters``, ``status``
  and ``score`` (public attributes).
* ``search/tuners/cv_tuner.py``: ``Tuner._populate_initial_space`` (no model built to discover the
  space), ``run_trial``, ``on_trial_end``, ``load_model``, ``save_model``.
* ``search/distributed/_chief.py``: ``Oracle.create_trial``, ``update_trial``, ``end_trial``
  (taken under the oracle's lock, see :func:`oracle_lock`).
* ``search/distributed/_client.py``: ``OracleClient.create_trial`` and ``__getattr__`` (its
  ``stub``, ``tuner_id`` and ``_oracle`` attributes); ``search/distributed/_server.py``:
  ``OracleServicer.GetTrial/UpdateTrial/EndTrial/CreateTrial`` (its ``oracle`` and
  ``stop_triggered`` attributes).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from search.errors import SearchError

# (module, class, attribute): base-class members the service's subclasses override or call.
OVERRIDDEN: tuple[tuple[str, str, str], ...] = (
    *(("keras_tuner.src.engine.oracle", "Oracle", m) for m in (
        "populate_space", "_random_values", "create_trial", "update_trial", "end_trial",
        "get_best_trials", "reload", "get_state", "set_state", "_duplicate",
        "_compute_values_hash")),
    ("keras_tuner.src.tuners.hyperband", "HyperbandOracle", "_start_new_bracket"),
    *(("keras_tuner.src.tuners.bayesian", "BayesianOptimizationOracle", m) for m in (
        "_vectorize_trials", "_random_populate_space", "_get_hp_bounds", "_vector_to_values",
        "_nonfixed_space")),
    *(("keras_tuner.src.engine.tuner", "Tuner", m) for m in (
        "_populate_initial_space", "run_trial", "on_trial_end", "load_model", "save_model")),
    *(("keras_tuner.src.distribute.oracle_client", "OracleClient", m) for m in (
        "create_trial", "__getattr__")),
    *(("keras_tuner.src.distribute.oracle_chief", "OracleServicer", m) for m in (
        "GetTrial", "UpdateTrial", "EndTrial", "CreateTrial")),
)
# Instance attributes of a fresh KerasTuner oracle that the service reads or changes.
ORACLE_ATTRIBUTES = ("_retry_queue", "end_order", "ongoing_trials", "tuner_ids",
                     "_tried_so_far", "_display", "trials")
# Module-level names replaced or read (module, attribute).
KT_MODULE_NAMES = (
    ("keras_tuner.src.config", "DEBUG"),
    ("keras_tuner.src.utils", "save_json"),
    ("keras_tuner.src.engine.oracle", "THREADS"),
    ("keras_tuner.src.engine.oracle", "LOCKS"),
    ("keras_tuner.src.engine.trial", "Trial"),
    ("keras_tuner.src.engine.trial", "TrialStatus"),
    ("keras_tuner.src.engine.metrics_tracking", "MetricsTracker"),
    ("keras_tuner.src.engine.conditions", "Parent"),
    ("keras_tuner.src.distribute.utils", "has_chief_oracle"),
    ("keras_tuner.src.distribute.utils", "is_chief_oracle"),
    ("keras_tuner.src.distribute.oracle_client", "OracleClient"),
    ("keras_tuner.src.distribute.oracle_chief", "start_server"),
    ("keras_tuner.src.distribute.oracle_chief", "OracleServicer"),
    ("keras_tuner.src.protos", "get_proto"),
    ("keras_tuner.src.protos", "get_service"),
    ("keras_tuner.src.protos", "get_service_grpc"),
)


# --------------------------------------------------------------------------------------------
# KerasTuner: module-level switches and replacements
# --------------------------------------------------------------------------------------------


def quiet_failed_trial_tracebacks() -> None:
    """No KerasTuner traceback on the terminal for a failed trial (the service reports it).

    KerasTuner prints them while its module flag ``config.DEBUG`` is true (the default).
    """
    from keras_tuner.src import config as kt_config

    kt_config.DEBUG = False


def reads_chief_oracle() -> bool:
    """True in a distributed worker: its oracle is the chief's, not the local project files."""
    from keras_tuner.src.distribute import utils as dist_utils

    return dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()


def replace_save_json(func: Callable[[str, Any], str]) -> None:
    """Routes KerasTuner's JSON saves through ``func`` (``search/store/kt_files.py``: atomic saves).

    ``Oracle.save``, ``Tuner.save`` and ``Trial.save`` all call ``utils.save_json`` through the
    module attribute, so replacing it is enough; idempotent.
    """
    from keras_tuner.src import utils

    if utils.save_json is not func:
        utils.save_json = func


def original_oracle_client() -> type:
    """KerasTuner's own ``OracleClient`` class, also after :func:`replace_oracle_client`."""
    from keras_tuner.src.distribute import oracle_client

    return getattr(oracle_client, "_CXR_ORIGINAL_CLIENT", oracle_client.OracleClient)


def replace_oracle_client(cls: type) -> None:
    """Makes workers use ``cls``: ``BaseTuner`` looks ``oracle_client.OracleClient`` up at call
    time, and offers no option to choose the client (retries and heartbeats, #990, #915)."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client._CXR_ORIGINAL_CLIENT = original_oracle_client()
    oracle_client.OracleClient = cls


def replace_start_server(serve: Callable[[Any], Any]) -> None:
    """Makes the chief serve through ``serve(oracle)``: ``BaseTuner.search`` calls
    ``oracle_chief.start_server`` by module attribute, and upstream's loop never exits when a
    worker dies (#915, #645)."""
    from keras_tuner.src.distribute import oracle_chief

    oracle_chief.start_server = serve


def oracle_servicer_base() -> type:
    """KerasTuner's gRPC ``OracleServicer`` (subclassed to note which worker called)."""
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief.OracleServicer


def grpc_protos() -> Any:
    """KerasTuner's protobuf module (``get_proto``, ``get_service``, ``get_service_grpc``)."""
    from keras_tuner.src import protos

    return protos


def trial_module() -> Any:
    """``keras_tuner.src.engine.trial`` (``Trial``, ``TrialStatus``; not exported publicly)."""
    from keras_tuner.src.engine import trial

    return trial


def silence_condition_proto() -> None:
    """Drops a stray debug ``print`` in KerasTuner 1.4.8's ``Parent.to_proto``.

    Every conditional hyperparameter sent over gRPC printed its first value on the chief's and
    the workers' stdout. Same conversion, without the print (a global replacement, per process).
    """
    from keras_tuner.src.engine import conditions

    protos = grpc_protos()

    def to_proto(self: Any) -> Any:
        first = self.values[0]
        if isinstance(first, str):
            kind = "string_value"
        elif isinstance(first, bool):
            kind = "boolean_value"
        elif isinstance(first, int):
            kind = "int_value"
        else:
            kind = "float_value"
        proto = protos.get_proto()
        values = [proto.Value(**{kind: v}) for v in self.values]
        return proto.Condition(parent=proto.Condition.Parent(name=self.name, values=values))

    conditions.Parent.to_proto = to_proto


# --------------------------------------------------------------------------------------------
# KerasTuner: oracle state (instance attributes without public accessors)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def oracle_lock(oracle: Any) -> Iterator[None]:
    """Holds KerasTuner's per-oracle lock like ``@synchronized``, but releases it on errors.

    Upstream's decorator keeps the lock when the call raises, deadlocking the next call (#915).
    Re-entrant for the thread that holds it, as upstream.
    """
    from keras_tuner.src.engine import oracle as oracle_module

    name = threading.current_thread().name
    if oracle_module.THREADS[oracle] == name:
        yield
        return
    with oracle_module.LOCKS[oracle]:
        oracle_module.THREADS[oracle] = name
        try:
            yield
        finally:
            oracle_module.THREADS[oracle] = None


def retry_queue(oracle: Any) -> list[str]:
    """The oracle's queue of trial ids to rerun (mutable; ``create_trial`` pops its end)."""
    return oracle._retry_queue


def set_retry_queue(oracle: Any, trial_ids: list[str]) -> None:
    """Replaces the retry queue (``search/tuners/oracles.py`` reorders it on reload)."""
    oracle._retry_queue = trial_ids


def ongoing_trials(oracle: Any) -> dict[str, Any]:
    """``{tuner_id: Trial}`` of the trials being run (mutable)."""
    return oracle.ongoing_trials


def end_order(oracle: Any) -> list[str]:
    """Ids of ended trials in end order (may repeat an id)."""
    return oracle.end_order


def tuner_ids(oracle: Any) -> set[str]:
    """The tuner ids the chief still waits for before it may exit (mutable)."""
    return oracle.tuner_ids


def project_dir(oracle: Any) -> str:
    """The oracle's project folder (set by the tuner; no public accessor on the oracle)."""
    return oracle._project_dir


def oracle_display(oracle: Any) -> Any:
    """The oracle's console ``Display`` (``on_trial_begin``/``on_trial_end``)."""
    return oracle._display


def reset_trial_metrics(trial: Any) -> None:
    """Empties a trial's metrics before the oracle resumes it (``search/tuners/oracle_base.py``).

    ``Tuner._run_and_update_trial`` skips reporting a trial whose objective is already
    recorded (the deprecated "run_trial updated the oracle itself" case), so a configuration
    resumed from a ladder rung would keep its rung score for good. ``MetricsTracker`` is not
    exported publicly.
    """
    from keras_tuner.src.engine.metrics_tracking import MetricsTracker

    trial.metrics = MetricsTracker()


def is_duplicate(oracle: Any, values: dict[str, Any]) -> bool:
    """True when ``values`` were tried already (upstream hashes them into ``_tried_so_far``)."""
    return oracle._duplicate(values)


# --------------------------------------------------------------------------------------------
# Keras and TensorFlow (search/fit/memory.py)
# --------------------------------------------------------------------------------------------


def tf_gradient_registry() -> dict | None:
    """TensorFlow's global gradient registry (a private dict), or None off TensorFlow.

    ``search.fit.memory.FitMemoryGuard`` drops the ``CustomGradient-*`` entries a fold fit added
    (they hold the whole traced train graph). None also when the registry is missing, which
    :func:`check_supported` refuses at start-up.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry  # noqa: SLF001 - see docstring
    except (ImportError, AttributeError):
        return None
    return registry if isinstance(registry, dict) else None


def model_distribute_strategy(model: Any) -> Any:
    """The ``tf.distribute`` strategy a model was built under, or None (and off TensorFlow).

    Keras keeps it in ``model._distribute_strategy``; the public ``distribute_strategy``
    property falls back to the default strategy, which cannot tell the two cases apart.
    """
    return getattr(model, "_distribute_strategy", None)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _has(module: str, attr: str, member: str | None = None) -> bool:
    try:
        obj = getattr(importlib.import_module(module), attr)
        return member is None or hasattr(obj, member)
    except (ImportError, AttributeError):
        return False


def missing_internals(backend: str | None = None) -> list[str]:
    """The private names this service needs that the installed versions lack.

    Args:
        backend: The Keras backend; TensorFlow's internals are checked only for
            ``"tensorflow"`` (None: the current one).

    Returns:
        Dotted names, e.g. ``"keras_tuner.src.engine.oracle.Oracle._retry_queue"``; empty
        when everything is there.
    """
    missing = [f"{m}.{a}" for m, a in KT_MODULE_NAMES if not _has(m, a)]
    missing += [f"{m}.{c}.{a}" for m, c, a in OVERRIDDEN if not _has(m, c, a)]
    try:
        import keras_tuner as kt

        oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
        missing += [f"keras_tuner.src.engine.oracle.Oracle.{a}" for a in ORACLE_ATTRIBUTES
                    if not hasattr(oracle, a)]
        hyperband = kt.oracles.HyperbandOracle(objective="val_loss", max_epochs=2)
        missing += [f"keras_tuner.src.tuners.hyperband.HyperbandOracle.{a}"
                    for a in ("_brackets", "_current_iteration") if not hasattr(hyperband, a)]
        bayesian = kt.oracles.BayesianOptimizationOracle(objective="val_loss", max_trials=1)
        missing += [f"keras_tuner.src.tuners.bayesian.BayesianOptimizationOracle.{a}"
                    for a in ("gpr", "_random_state") if not hasattr(bayesian, a)]
    except Exception as err:  # noqa: BLE001 - any failure here means an unsupported version
        missing.append(f"keras_tuner oracles ({err!r})")
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if backend == "tensorflow":
        if tf_gradient_registry() is None:
            missing.append("tensorflow.python.framework.ops._gradient_registry._registry")
        if not _trainer_keeps_strategy():
            missing.append("keras TensorFlowTrainer._distribute_strategy")
    return missing


def _trainer_keeps_strategy() -> bool:
    import inspect

    try:
        from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

        return "self._distribute_strategy" in inspect.getsource(TensorFlowTrainer.__init__)
    except (ImportError, OSError, TypeError):
        return False


def versions() -> str:
    """The installed KerasTuner, Keras and TensorFlow versions, for messages."""
    out = []
    for name in ("keras_tuner", "keras", "tensorflow"):
        try:
            out.append(f"{name} {importlib.import_module(name).__version__}")
        except (ImportError, AttributeError):
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def check_supported(backend: str | None = None) -> None:
    """Refuses, before any training, versions that lack an internal this service relies on.

    Raises:
        SearchError: naming every missing internal and the installed versions.
    """
    missing = missing_internals(backend)
    if missing:
        raise SearchError(
            f"This KerasTuner/Keras/TensorFlow combination ({versions()}) lacks private parts "
            f"the search relies on: {', '.join(missing)}. Install the versions pinned in "
            "requirements.txt (search/runtime/compat.py lists why each is needed)."
        )

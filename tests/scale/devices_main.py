"""Builds and fits one tiny spaces model under a device plan; prints a JSON result line.

Run in a fresh process (device setup must precede the first op) by test_devices.py:

    python tests/scale/devices_main.py --replicas 2 --mixed bfloat16 --family cnn
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--mixed", default="off")
    parser.add_argument("--jit", default="auto")
    parser.add_argument("--family", default="cnn")
    args = parser.parse_args()

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow" and args.replicas > 1:
        import tensorflow as tf

        # Logical CPUs must be configured before TensorFlow initialises its devices.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.replicas)])

    import keras
    import keras_tuner as kt
    import numpy as np

    import spaces
    from search.runtime import devices

    plan, lines = devices.prepare(
        devices.ScaleOptions(mixed_precision=args.mixed, jit_compile=args.jit,
                             data_parallel=str(args.replicas) if args.replicas > 1 else "off"),
        use_cpu_replicas=True)
    rng = np.random.default_rng(0)
    # 33 images: an odd last batch, which JAX's DataParallel cannot shard (trimmed to 32).
    x = rng.integers(0, 256, size=(33, 16, 16, 1), dtype=np.uint8)
    y = np.array([0, 1] * 16 + [1])
    inner = spaces.HYPERMODELS[args.family](input_shape=(16, 16, 1), class_counts=[16, 17])
    hm = devices.ScaledHyperModel(inner, plan, devices.jit_compile_value(args.jit))
    hp = kt.HyperParameters()
    hm.declare_hyperparameters(hp)
    hp.values["batch_size"] = 8
    hp.values["augmentation"] = False
    model = hm.build(hp)

    class Count(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_end(self, batch, logs=None):
            Count.steps += 1

    history = hm.fit(hp, model, x, y, validation_data=(x[:16], y[:16]), epochs=1,
                     callbacks=[Count()], verbose=0)
    # The Hyperband carry-over path evaluates on the (odd-sized) validation arrays.
    evaluated = model.evaluate(x[:15].astype("float32"), y[:15], batch_size=256, verbose=0,
                               return_dict=True)
    pred = model.predict(x[:4], verbose=0)
    # The shortcut probes' scores (search/fit/probes.py) under the plan: 33 images in chunks of 8
    # leave an odd last chunk of 1; each score must be the model's own for that image.
    from search.fit import probes

    reference = np.asarray(model(x.astype("float32"), training=False), dtype=np.float64).ravel()
    scores = probes.predict_scores(model, x, batch_size=8)
    whole = probes.predict_scores(model, x)
    probe = probes.probe_scores(model, x, y, {"border": x, "photometric": x[::-1].copy(),
                                              "geometric": x})
    out = {
        "backend": keras.backend.backend(), "replicas": plan.replicas, "kind": plan.kind,
        "policy": keras.config.dtype_policy().name,
        "output_dtype": str(model.get_layer("output").compute_dtype),
        "pred_dtype": str(pred.dtype),
        "hidden_compute_dtype": str(model.layers[2].compute_dtype),
        "steps": Count.steps, "loss": float(history.history["loss"][-1]),
        "evaluated_loss": float(evaluated["loss"]),
        "jit": str(model.jit_compile), "recorded_batch": hp.values["batch_size"],
        "probe_rows": [len(scores), len(whole)],
        "probe_max_diff": float(max(np.max(np.abs(scores - reference)),
                                    np.max(np.abs(whole - reference)))),
        "probe_clean_auc": probe["val_auc"], "probe_border_auc": probe["val_auc_border"],
        "reference_auc": probes.auc(y, reference),
        "lines": lines,
    }
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

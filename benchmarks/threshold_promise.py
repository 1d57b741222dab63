#!/usr/bin/env python3
"""How far an export's promised sensitivity moves on the run's test split (issue 23, item 4).

``threshold.json`` promises a sensitivity (and a specificity) at the exported threshold, measured
on validation data: the out-of-fold predictions of the fold models for an ensemble (each fold
model was early-stopped and restored on those same images), the retrained model's validation
slice for ``rank1_single`` (which also chose its early-stopping epoch). This script scores every
export of a run folder on the run's recorded test split, never used for any choice, and prints,
per export and threshold, the promise next to what the test split delivers. For a retrained
model it also scores the fold models' out-of-fold threshold it carried before (kept under
``out_of_fold`` in its ``threshold.json``), so the two sources can be compared on one model.

Usage:
  .venv/bin/python benchmarks/threshold_promise.py --run-dir runs/<name> [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def measure(run_dir: Path) -> list[dict[str, Any]]:
    """One row per export and threshold: promised and delivered sensitivity and specificity."""
    import numpy as np

    from results.run_data import load_run_data
    from results.model_io import load_export, load_run
    from results.thresholds import operating_point
    from search.fit.probes import predict_scores

    run = load_run(run_dir)
    dataset, split = load_run_data(run_dir, run, progress=False)
    test = np.asarray(split.test_idx)
    x, y = dataset.x[test], dataset.y[test]
    rows = []
    for path in sorted((run_dir / "exports").glob("*/rank*")):
        export = load_export(path)
        scores = predict_scores(export.model, x)
        records = [("exported", export.threshold)]
        if isinstance(export.threshold.get("out_of_fold"), dict):
            records.append(("fold models' (before)", export.threshold["out_of_fold"]))
        for label, record in records:
            promised = record["sensitivity_target"]
            got = operating_point(y, scores, record["threshold"])
            rows.append({
                "export": f"{path.parent.name}/{path.name}", "threshold_of": label,
                "source": record.get("source"), "threshold": record["threshold"],
                "n_validation": record.get("n_validation"),
                "promised_sensitivity": promised["sensitivity"],
                "test_sensitivity": got["sensitivity"],
                "promised_specificity": promised["specificity"],
                "test_specificity": got["specificity"],
                "n_test": int(y.size), "n_test_positive": int(y.sum()),
                "test_split": split.source})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = measure(args.run_dir)
    print("| export | threshold | source | value | sensitivity promised -> test | "
          "specificity promised -> test |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['export']} | {r['threshold_of']} | {r['source']} | {r['threshold']:.4f} | "
              f"{r['promised_sensitivity']:.3f} -> {r['test_sensitivity']:.3f} | "
              f"{r['promised_specificity']:.3f} -> {r['test_specificity']:.3f} |")
    if rows:
        print(f"test split: {rows[0]['test_split']}, {rows[0]['n_test']} images "
              f"({rows[0]['n_test_positive']} positive)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

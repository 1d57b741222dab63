"""The run folder on disk: atomic writes and the one JSON reader (``files``), ``run.json`` and
the resume checks (``run_folder``), each trial's ``cv.json`` (``trial_record``), the fold
records' shared helpers (``fold_records``), out-of-fold predictions (``oof``), KerasTuner's own
files (``kt_files``) and the run lock (``lock``). Format in ARCHITECTURE.md.

Imports ``search.errors`` and ``search.runtime`` from the search package.
"""

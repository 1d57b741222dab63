"""Writing a run's leaderboard: the printed table, the run's full ``leaderboard.<format>``, the
``--out`` file and the plots (the library call behind ``leaderboard`` and the ``run`` flow).

The leaderboard and matplotlib are imported when called, so ``run_search.py --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results.errors import ResultsError

FORMATS = ("csv", "md", "json")
_EXT_FORMAT = {".csv": "csv", ".md": "md", ".markdown": "md", ".json": "json"}


def resolve_output(run_dir: Path, out: str | None, fmt: str | None
                   ) -> tuple[Path, Path | None, str]:
    """The run's full leaderboard file, the ``--out`` file (or None) and its format (pure).

    The run's own ``leaderboard.<format>`` always holds every trial; ``--top-k`` and ``--all``
    shape only what is printed and what ``--out`` receives, so a quick ``--top-k 2`` never
    truncates the file the report and the benchmarks read.
    """
    if out is not None:
        path = Path(out)
        fmt = fmt or _EXT_FORMAT.get(path.suffix.lower()) or "csv"
        return run_dir / "leaderboard.csv", path, fmt
    fmt = fmt or "csv"
    return run_dir / f"leaderboard.{fmt}", None, fmt


def write_leaderboard(run_dir: str | Path, *, family: str = "both", top_k: int | None = 10,
                      include_all: bool = False, out: str | None = None, fmt: str | None = None,
                      plots: bool = True, echo=print) -> dict:
    """Builds and prints a leaderboard, writes the run's full one (and ``out``), draws plots.

    Args:
        run_dir: the run folder.
        family: ``cnn``, ``ann`` or ``both``.
        top_k: completed trials per family to print and to write to ``out``.
        include_all: also print (and write to ``out``) every running and failed trial.
        out: an extra file for the rows shown; the run's ``leaderboard.<fmt>`` always gets
            every trial.
        fmt: ``csv``, ``md`` or ``json`` (default: from ``out``'s extension, else csv).
        plots: draw the PNG plots into ``run_dir/plots``.
        echo: where the lines go.

    Returns:
        ``{"rows" (shown), "path" (the full file, None when it could not be written), "out",
        "plots", "notes"}``.
    """
    from results.leaderboard import WRITERS, build_leaderboard, format_table, run_objective
    from results.leaderboard import select_rows
    from results.output_paths import check_output_file

    if top_k is not None and top_k < 1:
        raise ResultsError(f"--top-k must be at least 1, got {top_k}.")
    run_dir = Path(run_dir)
    full_path, out_path, fmt = resolve_output(run_dir, out, fmt)
    if out_path is not None:  # refused before the work, not after it
        check_output_file(out_path)
    notes: list[str] = []
    rows = build_leaderboard(run_dir, family, notes=notes)
    selected = _with_ensemble_weights(run_dir, rows, notes)
    shown = select_rows(rows, top_k=top_k, include_all=include_all)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("COMPLETED", "RUNNING", "FAILED")}
    # Each family is ranked by its own objective (--objective auto), so each table shows the
    # column it was ranked by: one table under the run's objective showed the ANN's geometric
    # probe beside a rank that came from its photometric one.
    families = list(dict.fromkeys(str(r["model"]) for r in shown)) or [family]
    objectives = {fam: run_objective(run_dir, fam) for fam in families}
    one = len(set(objectives.values())) == 1
    said = ("{} ({})".format(*objectives[families[0]]) if one else
            ", ".join(f"{o} ({d}) for {fam}" for fam, (o, d) in objectives.items()))
    echo(f"{run_dir}: objective {said}; "
         + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))
    for fam in families[:1] if one else families:
        echo(format_table(shown if one else [r for r in shown if str(r["model"]) == fam],
                          objectives[fam][0]))
    if not include_all and (counts["RUNNING"] or counts["FAILED"]):
        echo("(running and failed trials hidden; --all lists them with their reason)")
    for line in selected:
        echo(line)
    for note in notes:
        echo(f"note: {note}")
    written: Path | None = full_path
    try:
        WRITERS[full_path.suffix.lstrip(".")](rows, full_path)
    except OSError as err:
        # A read-only or full run folder (an archived run, another user's): the table above is
        # what the user asked for, so say why the file is stale instead of failing.
        written = None
        echo(f"warning: could not write the full leaderboard {full_path} "
             f"({err.strerror or err}); the table above is complete. Make the run folder "
             f"writable, or pass --out FILE to save the rows elsewhere.")
    if written is not None:
        echo(f"leaderboard: {full_path} (every trial)")
    if out_path is not None:
        if written is not None and out_path.resolve() == full_path.resolve():
            echo(f"{out_path} is the run's full leaderboard, so it holds every trial")
        else:
            WRITERS[fmt](shown, out_path)
            echo(f"rows shown: {out_path}")
    pngs: list[Path] = []
    if plots:
        from results.plots import plot_run

        try:
            pngs = plot_run(run_dir, family, top_k=top_k or 10)
        except OSError as err:
            echo(f"warning: plots skipped: cannot write into {run_dir / 'plots'} "
                 f"({err.strerror or err}); --no-plots skips them.")
        if pngs:
            echo(f"plots: {run_dir / 'plots'} ({len(pngs)} PNG files)")
    return {"rows": shown, "path": written, "out": out_path, "plots": pngs, "notes": notes}


def _with_ensemble_weights(run_dir: Path, rows: list[dict[str, Any]], notes: list[str]
                           ) -> list[str]:
    """Adds ``ensemble_weight`` (the ``--ensemble select`` weight, 0 when not selected) to each
    completed row whose family has out-of-fold files, and returns one line per family naming
    the members and weights. The selection is recomputed from the files (reproducible), so it
    is what ``export`` picks from the trials as they are now."""
    from results.ensemble import family_selection
    from results.model_io import load_run

    lines = []
    for fam in dict.fromkeys(str(r.get("model")) for r in rows):
        try:
            found = family_selection(run_dir, fam, load_run(run_dir))
        except (ResultsError, OSError, ValueError) as err:
            notes.append(f"{fam}: no ensemble selection ({err})")
            continue
        if found is None:
            continue
        sel = found[0]
        for r in rows:
            if r.get("model") == fam and r.get("status") == "COMPLETED":
                r["ensemble_weight"] = sel.weights.get(str(r.get("trial_id")), 0.0)
        members = " + ".join(f"trial {t} x {w:.2f}" for t, w in sel.weights.items())
        score = f"{sel.score:.4f}" if sel.score == sel.score else "n/a"
        lines.append(f"{fam} ensemble (--ensemble select, {sel.selected_on} on the weighted "
                     f"out-of-fold scores {score}, optimistic): {members}"
                     + (f" ({sel.fallback})" if sel.fallback else ""))
    return lines

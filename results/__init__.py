# export / compare / predict (lazy: these import Keras only when called)
from results.errors import ResultsError  # noqa: E402,F401
# leaderboard / plots / analysis / run flow (JSON only at import; matplotlib and Keras lazily)
from results.leaderboard import (  # noqa: E402,F401
    best_trials, build_leaderboard, collect_trials, rows_to_csv, rows_to_json, rows_to_markdown,
    select_rows, trials_to_rows)
from results.plots import plot_run  # noqa: E402,F401
from results.analysis import analyze_rows, write_analysis  # noqa: E402,F401

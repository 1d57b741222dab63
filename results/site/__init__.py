"""A new site's operating point: ``calibrate`` (labelled films) and ``check`` (unlabelled).

Pure rules in ``bounds`` (Clopper-Pearson), ``calibration`` (the guaranteed threshold) and
``shift_check`` (the unlabelled distribution check); IO in ``reference`` (the training site's
out-of-fold scores), ``site_files`` (records beside the export) and ``workflow`` (the commands'
library calls); the report's words in ``report``.
"""

from results.site.bounds import interval, lower_bound, min_positives, upper_bound
from results.site.calibration import allowed_misses, assess, calibrate_scores, guaranteed_threshold
from results.site.shift_check import check_scores, mixture_distance, probe_shift

__all__ = ["allowed_misses", "assess", "calibrate_scores", "check_scores", "guaranteed_threshold",
           "interval", "lower_bound", "min_positives", "mixture_distance", "probe_shift",
           "upper_bound"]

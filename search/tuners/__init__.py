"""The tuners: the capped oracles (``oracle_base``, ``oracles``: Hyperband, Bayesian, random;
``tpe``: Optuna's TPE) and the k-fold tuner that runs one trial over its folds (``cv_tuner``).

The highest package below the engine: imports every other one except ``distributed``.
"""

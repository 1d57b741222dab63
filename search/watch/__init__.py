"""What the user watches while a search runs: progress lines and bars (``progress``) and
TensorBoard event files (``tensorboard``).

Imports the lower packages (``runtime``, ``store``, ``schedule``, ``fit``), never the tuners.
"""

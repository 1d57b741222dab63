"""The machine a search runs on: devices and precision (``devices``), the one seam to private
KerasTuner, Keras and TensorFlow internals (``compat``), Ctrl-C and SIGTERM (``signals``), and
the fault-injection points the resume tests kill at (``failpoints``).

Imports only ``search.errors`` from the search package.
"""

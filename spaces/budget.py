"""The default parameter budget of one trial (``--max-params``)."""

from __future__ import annotations

# 2M float32 weights = 8 MB, 24 MB with Adam's two slots. A dense layer costs ~6 FLOPs per weight
# per image (forward + backward), so 2M weights x ~5k training images at 64 px is ~60 GFLOP per
# epoch: seconds per epoch on 2 CPU cores, i.e. a 10-epoch, 3-fold trial in minutes. The notes'
# basic models at 64 px (CNN ~1.1M, ANN ~0.54M grayscale) fit with room; 10-layer ANNs of 1024
# units on 12k RGB inputs (13M+) do not, and need --max-params raised on a GPU box.
DEFAULT_MAX_PARAMS = 2_000_000

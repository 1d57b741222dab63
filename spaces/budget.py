"""The default budgets of one trial: parameters (``--max-params``) and FLOPs (``--max-gflops``).

Both are checked from exact counts computed from the hyperparameters, before any layer is built.

Parameters. 2M float32 weights = 8 MB, 24 MB with Adam's two slots. A dense layer costs ~6 FLOPs
per weight per image (forward + backward), so 2M weights x ~5k training images at 64 px is ~60
GFLOP per epoch: seconds per epoch on 2 CPU cores, i.e. a 10-epoch, 3-fold trial in minutes. The
notes' basic models at 64 px (CNN ~1.1M, ANN ~0.54M grayscale) fit with room; 10-layer ANNs of
1024 units on 12k RGB inputs (13M+) do not.

Why the defaults follow the image size: the flatten head of the notes' basic CNN grows with the
pixel count (4.2M parameters at 128 px, 12.9M at 224 px), so a fixed 2M would refuse the very
model a GPU user tries first. The default is 2M x (size / 64)^2: 2M at 64 px, 8M at 128 px,
24.5M at 224 px.

Why a FLOPs budget too: a wide convolution at full resolution has few parameters and many FLOPs.
The reference run met a decreasing filter hierarchy (256..32 filters, 4 blocks of 2 convs) of
~5 GFLOPs per 64 px image that ran over 10 minutes per fold on 2 cores, under the parameter
limit. Forward GFLOPs per image (2 x multiply-adds of the conv and dense layers) are capped at
1.0 x (size / 64)^2 by default: the basic CNN is ~0.023 at 64 px, a 4-block increasing CNN of
base 32 with 2 convs per block ~0.42; the 5-GFLOP model is refused.
"""

from __future__ import annotations

DEFAULT_MAX_PARAMS = 2_000_000     # at 64 px; see default_max_params
DEFAULT_MAX_GFLOPS = 1.0           # at 64 px; see default_max_gflops
REFERENCE_SIZE = 64


def _scale(image_size: int) -> float:
    return max(1.0, (int(image_size) / REFERENCE_SIZE) ** 2)


def default_max_params(image_size: int) -> int:
    """The ``--max-params`` default for an image size: 2M x (size / 64)^2, at least 2M."""
    return int(round(DEFAULT_MAX_PARAMS * _scale(image_size)))


def default_max_gflops(image_size: int) -> float:
    """The ``--max-gflops`` default: 1.0 forward GFLOPs per image x (size / 64)^2, at least 1."""
    return round(DEFAULT_MAX_GFLOPS * _scale(image_size), 3)

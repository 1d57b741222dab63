"""Decoding image files to square uint8 arrays with Pillow, in parallel, with a progress bar.

No TensorFlow: this path must work under every Keras backend. Large JPEGs (the full-resolution
Kaggle films are up to ~2,900 px a side) are decoded in Pillow's draft mode, which lets libjpeg
scale by 1/2, 1/4 or 1/8 while decoding: several times faster than decoding full size and
resizing afterwards.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from PIL import Image

COLOR_MODES = ("grayscale", "rgb")
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024
# Below this many files a process pool costs more than it saves.
_PARALLEL_MIN_FILES = 256
_CHUNK = 64

log = logging.getLogger(__name__)  # shown by the CLI, copied into search.log


def decode_bytes(data: bytes, image_size: int, color_mode: str) -> np.ndarray:
    """Decodes one encoded image to a ``(S, S, C)`` uint8 array (squashed, not cropped).

    Raises:
        OSError, ValueError, SyntaxError: unreadable or truncated data (Pillow's errors).
    """
    pil_mode = "L" if color_mode == "grayscale" else "RGB"
    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            # draft() keeps the decoded image at least image_size on each side.
            im.draft(pil_mode, (image_size, image_size))
        im.load()  # surfaces truncated files as OSError here rather than later
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit radiographs: keep the top 8 bits instead of Pillow's clipping at 255.
            arr = np.asarray(im, dtype=np.uint32)
            im = Image.fromarray((arr >> 8 if arr.max() > 255 else arr).astype(np.uint8))
        if im.mode != pil_mode:
            im = im.convert(pil_mode)
        if im.size != (image_size, image_size):
            im = im.resize((image_size, image_size), Image.BILINEAR)
        out = np.asarray(im, dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


def _decode_chunk(args: tuple[list[str], int, str]) -> list[tuple[np.ndarray | None, str, str]]:
    paths, image_size, color_mode = args
    results = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as err:
            results.append((None, "", f"cannot read: {err}"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        try:
            results.append((decode_bytes(data, image_size, color_mode), digest, ""))
        except Exception as err:  # noqa: BLE001 - any decoder failure means "skip this file"
            results.append((None, digest, f"cannot decode: {type(err).__name__}: {err}"))
    return results


class Progress:
    """A minimal stderr progress bar (no tqdm dependency).

    On a terminal it redraws one line; otherwise (logs, CI) it prints a line at each quarter,
    and only for long loads, so captured output stays short.
    """

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.done = total, label, 0
        self.tty = sys.stderr.isatty()
        self.enabled = enabled and total > 0 and (self.tty or total >= 1000)
        self.start = self._last = time.monotonic()
        self._quarter = 0

    def update(self, n: int) -> None:
        """Advances by ``n`` items and redraws when due."""
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if now - self._last >= 0.1 or self.done >= self.total:
                self._last = now
                frac = self.done / self.total
                bar = "#" * int(frac * 30)
                sys.stderr.write(
                    f"\r{self.label} [{bar:<30}] {self.done}/{self.total} "
                    f"{frac:4.0%} {now - self.start:5.1f}s"
                )
                sys.stderr.flush()
        elif self.done * 4 >= (self._quarter + 1) * self.total:
            self._quarter = self.done * 4 // self.total
            print(f"{self.label}: {self.done}/{self.total} ({now - self.start:.1f}s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        """Ends the progress line."""
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork when safe (fast, and works from notebooks and stdin scripts), else forkserver.

    Forking after TensorFlow, JAX or PyTorch have started their thread pools can deadlock the
    child, so once one of them is imported the workers come from a clean forkserver instead.
    """
    methods = multiprocessing.get_all_start_methods()
    threaded = any(m in sys.modules for m in ("tensorflow", "jax", "torch"))
    if "fork" in methods and not threaded:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def decode_files(paths: Sequence[str | os.PathLike], image_size: int, color_mode: str, *,
                 workers: int | None = None, progress: bool = True,
                 label: str = "decoding images") -> tuple[np.ndarray, list[str], list[str]]:
    """Decodes many files, in parallel over the CPU cores.

    Args:
        paths: Absolute file paths.
        image_size: Side of the square output.
        color_mode: ``"grayscale"`` or ``"rgb"``.
        workers: Processes to use; ``None`` means every core, 1 decodes in this process.
        progress: Show a progress bar on stderr (terminal, or loads of 1000+ files).
        label: Text in front of the progress bar.

    Returns:
        ``(x, sha256_hex, errors)``: x is ``(N, S, S, C)`` uint8 with zeros where decoding failed;
        ``errors[i]`` is ``""`` for a good file, else the reason.
    """
    channels = 1 if color_mode == "grayscale" else 3
    n = len(paths)
    x = np.zeros((n, image_size, image_size, channels), dtype=np.uint8)
    digests, errors = [""] * n, [""] * n
    str_paths = [os.fspath(p) for p in paths]
    chunks = [(str_paths[i:i + _CHUNK], image_size, color_mode) for i in range(0, n, _CHUNK)]
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) or 1
    bar = Progress(n, label, progress)

    def store(start: int, chunk_result: list) -> None:
        for j, (arr, digest, err) in enumerate(chunk_result):
            digests[start + j], errors[start + j] = digest, err
            if arr is not None:
                x[start + j] = arr
        bar.update(len(chunk_result))

    done = 0  # chunks finished
    try:
        if workers > 1 and n >= _PARALLEL_MIN_FILES:
            try:
                with ProcessPoolExecutor(min(workers, len(chunks)),
                                         mp_context=_pool_context()) as pool:
                    for chunk_result in pool.map(_decode_chunk, chunks):
                        store(done * _CHUNK, chunk_result)
                        done += 1
            except (BrokenProcessPool, OSError) as err:
                # Workers could not start (e.g. spawn cannot re-import __main__ from stdin):
                # finish in this process rather than fail or hang.
                log.warning(f"parallel decoding failed ({err}); decoding in one process")
        for k in range(done, len(chunks)):
            store(k * _CHUNK, _decode_chunk(chunks[k]))
    finally:
        bar.close()
    return x, digests, errors

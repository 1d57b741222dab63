"""On-disk cache of decoded arrays (``.npz``), keyed by the file list and the decode settings.

The key is the dataset fingerprint: sha256 over every file's relative path, size and mtime, the
image size and the colour mode. Touching, adding, removing or replacing any file, or asking for
another size or colour mode, gives another key, so a stale entry is never read. Entries are
written uncompressed (loading is then a plain read) and atomically (write, then rename), so an
interrupted write never leaves a half entry behind.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger(__name__)  # shown by the CLI, copied into search.log


def cache_root() -> Path:
    """The cache root: ``$CXR_CACHE_DIR`` when set, else ``<repo>/.cache`` (git-ignored)."""
    env = os.environ.get("CXR_CACHE_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / ".cache"


def decoded_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where decoded arrays go: ``cache_dir`` when given, else ``<cache root>/decoded``."""
    return Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "decoded"


def entry_path(cache_dir: str | os.PathLike | None, fingerprint: str) -> Path:
    """The ``.npz`` file for one fingerprint."""
    return decoded_cache_dir(cache_dir) / f"decoded-{fingerprint[:32]}.npz"


def load_entry(cache_dir: str | os.PathLike | None,
               fingerprint: str) -> tuple[np.ndarray, list[str], list[str]] | None:
    """Reads ``(x, sha256s, errors)`` for a fingerprint, or ``None`` on a miss or a bad entry.

    A damaged entry is deleted, with a warning, so the next save rebuilds it.
    """
    path = entry_path(cache_dir, fingerprint)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["fingerprint"]) != fingerprint:
                return None
            return npz["x"], npz["digests"].tolist(), npz["errors"].tolist()
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        # A damaged entry (truncated by a full disk or a copy, older format) is only a lost
        # speed-up: drop it so the caller decodes again and writes a good one in its place.
        log.warning(f"the decode cache entry {path} is damaged ({type(err).__name__}: {err}); "
                    "decoding the images again and rebuilding it")
        try:
            path.unlink()
        except OSError:
            pass
        return None


def save_entry(cache_dir: str | os.PathLike | None, fingerprint: str, x: np.ndarray,
               digests: list[str], errors: list[str]) -> Path | None:
    """Writes an entry atomically; returns its path, or ``None`` when the cache is not writable."""
    path = entry_path(cache_dir, fingerprint)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, x=x, digests=np.asarray(digests, dtype=str),
                         errors=np.asarray(errors, dtype=str), fingerprint=np.asarray(fingerprint))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        # A read-only or full disk must not stop the load: the cache is only a speed-up.
        return None
    return path

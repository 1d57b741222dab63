"""Search-space configuration: the shipped TOML defaults merged with a user's ``--space`` file.

A :class:`SpaceConfig` holds, per model family, one :class:`Dim` for every hyperparameter. It is
plain data (JSON-serialisable, fingerprinted) so ``search/`` can store it in ``run.json`` and refuse
to resume a run under a different space. Nothing here imports Keras.

User file format (``--space FILE``)::

    [common]                       # applies to both families
    learning_rate = 0.001          # a scalar fixes the dimension
    optimizer = ["adam", "sgd"]    # a list restricts the choices
    [cnn]                          # family sections ([cnn], [ann], [transfer]) win over [common]
    conv_blocks = {min = 2, max = 4}   # a table narrows or widens (within the hard bounds)
    dense_units = {min = 64, max = 256, default = 128}
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from data_pipeline.errors import UserError

DEFAULT_SPACE_FILE = Path(__file__).with_name("default_space.toml")
FAMILIES = ("cnn", "ann", "transfer")
# What ``--model both`` searches: the notes' two families. The transfer family (pretrained
# backbones) is searched only when asked for (``--model transfer``): its default costs need a GPU.
DEFAULT_FAMILIES = ("cnn", "ann")
TYPES = ("int", "float", "choice", "bool")


class SpaceError(UserError):
    """A search-space file or value is invalid; the message names the dimension and the fix."""


@dataclass(frozen=True)
class Condition:
    """A dimension is active only when ``parent`` takes one of ``values`` or is ``>= at_least``."""

    parent: str
    values: tuple[Any, ...] | None = None
    at_least: int | None = None

    def active_values(self, parent: Dim) -> list[Any]:
        """The parent's possible values (under the effective space) that activate the child."""
        if self.at_least is not None:
            return [v for v in parent.possible_values() if v >= self.at_least]
        return [v for v in parent.possible_values() if v in (self.values or ())]

    def describe(self) -> str:
        if self.at_least is not None:
            return f"{self.parent} >= {self.at_least}"
        return f"{self.parent} in {list(self.values or ())}"


_DENSE_HEAD = Condition("dense_layers", at_least=1)
# Structural: which value of which parent makes a dimension matter. The tuner gets these as
# conditional scopes, so it never spends trials varying a value the model does not use.
CONDITIONS: dict[str, dict[str, tuple[Condition, ...]]] = {
    "common": {
        "l2_strength": (Condition("l2", (True,)),),
        "momentum": (Condition("optimizer", ("sgd",)),),
        "lr_decay_epochs": (Condition("lr_schedule", ("exponential",)),),
        "augmentation_strength": (Condition("augmentation", (True,)),),
        "augmentation_ranges": (Condition("augmentation", (True,)),),
    },
    "cnn": {
        "conv_batch_norm_blocks": (
            Condition("conv_batch_norm", ("before_activation", "after_activation")),
        ),
        "conv_dropout_rate": (Condition("conv_dropout", ("every_block", "last_block")),),
        "dense_units": (_DENSE_HEAD,),
        "dense_hierarchy": (_DENSE_HEAD,),
        "dense_dropout": (_DENSE_HEAD,),
        "dense_dropout_rate": (_DENSE_HEAD, Condition("dense_dropout", ("all", "last"))),
    },
    "ann": {
        "dense_dropout_rate": (Condition("dense_dropout", ("all", "first_half", "second_half")),),
    },
    "transfer": {
        "dense_units": (_DENSE_HEAD,),
        "dense_hierarchy": (_DENSE_HEAD,),
        "dense_dropout": (_DENSE_HEAD,),
        "dense_dropout_rate": (_DENSE_HEAD, Condition("dense_dropout", ("all", "last"))),
        # Stage 2 exists only when some blocks are unfrozen.
        "head_epochs": (Condition("fine_tune_blocks", at_least=1),),
        "fine_tune_lr_ratio": (Condition("fine_tune_blocks", at_least=1),),
    },
}


@dataclass(frozen=True)
class Dim:
    """One hyperparameter: its type, range or choices, default, and whether the user fixed it."""

    name: str
    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: str = "linear"
    values: tuple[Any, ...] | None = None
    bounds: tuple[float, float] | None = None
    fixed: bool = False
    help: str = ""

    def possible_values(self) -> list[Any]:
        """Every value the tuner may pick (int, choice, bool); floats give their range ends."""
        if self.fixed:
            return [self.default]
        if self.type == "bool":
            return [False, True]
        if self.type == "choice":
            return list(self.values or ())
        if self.type == "int":
            lo, hi, step = int(self.min), int(self.max), int(self.step or 1)
            if self.sampling == "log" and step > 1:
                out = [lo]
                while out[-1] * step <= hi:
                    out.append(out[-1] * step)
                return out
            return list(range(lo, hi + 1, step))
        return [self.min, self.max]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = list(self.values) if self.values is not None else None
        out["bounds"] = list(self.bounds) if self.bounds is not None else None
        return out


@dataclass(frozen=True)
class SpaceConfig:
    """The effective search space of every family (common dimensions copied into each)."""

    families: dict[str, dict[str, Dim]]
    source: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def dims(self, family: str) -> dict[str, Dim]:
        """The dimensions of ``family`` in registration order (parents before children)."""
        if family not in self.families:
            raise SpaceError(f"unknown model family {family!r}; choose one of {list(FAMILIES)}")
        return self.families[family]

    def conditions(self, family: str, name: str) -> tuple[Condition, ...]:
        return CONDITIONS[family].get(name) or CONDITIONS["common"].get(name) or ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"source", "overrides", "cnn": {name: dim}, "ann": {...}}``."""
        out: dict[str, Any] = {"source": self.source, "overrides": self.overrides}
        for fam, dims in self.families.items():
            out[fam] = {name: dim.to_dict() for name, dim in dims.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpaceConfig:
        """Inverse of :meth:`to_dict` (for a space read back from ``run.json``).

        A family missing from ``data`` (a run recorded before the family existed) is left out;
        :meth:`dims` then refuses it by name.
        """
        families = {}
        for fam in FAMILIES:
            if fam not in data:
                continue
            dims = {}
            for name, d in data[fam].items():
                d = dict(d)
                d["values"] = tuple(d["values"]) if d.get("values") is not None else None
                d["bounds"] = tuple(d["bounds"]) if d.get("bounds") is not None else None
                dims[name] = Dim(**d)
            families[fam] = dims
        return cls(families, data.get("source"), dict(data.get("overrides") or {}))

    def fingerprint(self) -> str:
        """sha256 of the effective dimensions only (not the file's path), stable across runs."""
        payload = {fam: self.to_dict()[fam] for fam in self.families}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def load_space(path: str | Path | None = None) -> SpaceConfig:
    """Loads the shipped defaults and merges a user's TOML overrides onto them.

    Args:
        path: A ``--space`` TOML file, or None for the shipped defaults alone.

    Returns:
        The validated effective space.

    Raises:
        SpaceError: The file is missing or not TOML, or names an unknown section or dimension,
            or gives a wrong type, an empty or inverted range, or a value outside the hard bounds.
    """
    shipped = _read_toml(DEFAULT_SPACE_FILE)
    base = {sec: {n: _parse_dim(n, spec) for n, spec in shipped[sec].items()}
            for sec in ("common", *FAMILIES)}
    user: dict[str, Any] = _read_toml(Path(path)) if path is not None else {}
    unknown = sorted(set(user) - {"common", *FAMILIES})
    if unknown:
        raise SpaceError(f"{path}: unknown section(s) {unknown}; use [common], [cnn], [ann] "
                         "or [transfer].")
    families: dict[str, dict[str, Dim]] = {}
    for fam in FAMILIES:
        shipped_dims = {**base["common"], **base[fam]}
        dims = dict(shipped_dims)
        # A family section replaces a [common] override of the same name (both start from the
        # shipped dimension), so `[ann] batch_size = 64` works under `[common] batch_size = [16]`.
        for section, allowed in (("common", base["common"]), (fam, shipped_dims)):
            for name, value in (user.get(section) or {}).items():
                if name not in allowed:
                    raise SpaceError(
                        f"{path}: [{section}] {name!r} is not a dimension of this section; "
                        f"valid names: {', '.join(sorted(allowed))}."
                    )
                dims[name] = _override(shipped_dims[name], value,
                                       where=f"{path}: [{section}] {name}")
        families[fam] = dims
    return SpaceConfig(families, str(path) if path is not None else None, user)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SpaceError(f"space file {path} does not exist; pass an existing TOML file.") from None
    except tomllib.TOMLDecodeError as err:
        raise SpaceError(f"space file {path} is not valid TOML ({err}); fix the syntax.") from None
    except IsADirectoryError:
        raise SpaceError(f"space file {path} is a directory, not a file; pass a TOML file such "
                         "as spaces/default_space.toml (or leave --space out).") from None
    except UnicodeDecodeError as err:
        raise SpaceError(f"space file {path} is not UTF-8 text ({err.reason} at byte "
                         f"{err.start}); TOML files must be UTF-8: re-save it as UTF-8 or pass "
                         "the right file.") from None
    except OSError as err:
        raise SpaceError(f"space file {path} cannot be read ({err.strerror or err}); check the "
                         "path and its permissions, or pass another --space file.") from None


def _parse_dim(name: str, spec: dict[str, Any]) -> Dim:
    spec = dict(spec)
    for key in ("values", "bounds"):
        if spec.get(key) is not None:
            spec[key] = tuple(spec[key])
    return Dim(name=name, **spec)


def _check_type(dim: Dim, value: Any, where: str) -> Any:
    """Returns ``value`` coerced to the dimension's type, or raises SpaceError."""
    kind = dim.type
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "choice": value in (dim.values or ()) and type(value) is type(dim.values[0]),
    }[kind]
    if not ok:
        want = f"one of {list(dim.values)}" if kind == "choice" else f"a {kind}"
        raise SpaceError(f"{where}: got {value!r}, expected {want}.")
    if kind == "float":
        value = float(value)
    if dim.bounds is not None and not dim.bounds[0] <= value <= dim.bounds[1]:
        raise SpaceError(
            f"{where}: {value!r} is outside the allowed bounds {list(dim.bounds)}; "
            "choose a value within them."
        )
    return value


def _override(dim: Dim, value: Any, where: str) -> Dim:
    """Applies one user override (scalar = fix, list = restrict, table = range/default)."""
    if isinstance(value, dict):
        allowed = {"int": {"min", "max", "step", "sampling", "default"},
                   "float": {"min", "max", "step", "sampling", "default"},
                   "choice": {"values", "default"}, "bool": {"default"}}[dim.type]
        extra = sorted(set(value) - allowed)
        if extra:
            raise SpaceError(f"{where}: unknown key(s) {extra}; a {dim.type} accepts {sorted(allowed)}.")
        if "values" in value:
            dim = _restrict(dim, value["values"], where)
        if dim.type in ("int", "float"):
            dim = _set_range(dim, value, where)
        if "default" in value:
            default = _check_type(dim, value["default"], f"{where}.default")
            if default not in dim.possible_values() and dim.type != "float" or (
                dim.type == "float" and not dim.min <= default <= dim.max
            ):
                raise SpaceError(f"{where}: default {default!r} is not in the range or choices.")
            dim = replace(dim, default=default)
        return dim
    if isinstance(value, list):
        if dim.type not in ("choice", "bool"):
            raise SpaceError(f"{where}: a list restricts choices, but {dim.name} is a {dim.type}; "
                             "use {min = ..., max = ...} or a single value.")
        return _restrict(dim, value, where)
    return replace(dim, default=_check_type(dim, value, where), fixed=True,
                   **({"min": value, "max": value} if dim.type in ("int", "float") else {}))


def _restrict(dim: Dim, values: Any, where: str) -> Dim:
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{where}: the list of choices is empty; give at least one value.")
    checked = [_check_type(dim, v, where) for v in values]
    if dim.type == "bool" or len(set(checked)) == 1:
        if len(set(checked)) == 1:
            return replace(dim, default=checked[0], fixed=True)
        return dim
    ordered = tuple(v for v in dim.values if v in checked)  # keep the shipped order
    default = dim.default if dim.default in ordered else ordered[0]
    return replace(dim, values=ordered, default=default)


def _set_range(dim: Dim, table: dict[str, Any], where: str) -> Dim:
    lo = _check_type(dim, table.get("min", dim.min), f"{where}.min")
    hi = _check_type(dim, table.get("max", dim.max), f"{where}.max")
    sampling = table.get("sampling", dim.sampling)
    if sampling not in ("linear", "log"):
        raise SpaceError(f"{where}.sampling: got {sampling!r}, expected 'linear' or 'log'.")
    step = table.get("step", dim.step)
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0
                             or (dim.type == "int" and not isinstance(step, int))):
        raise SpaceError(f"{where}.step: got {step!r}, expected a positive {dim.type}.")
    if dim.type == "int" and sampling == "log" and step is not None and step < 2:
        raise SpaceError(f"{where}.step: a log int's step is its factor and must be >= 2.")
    if lo > hi:
        raise SpaceError(f"{where}: the range is inverted (min {lo!r} > max {hi!r}); swap them.")
    if sampling == "log" and lo <= 0:
        raise SpaceError(f"{where}: log sampling needs min > 0, got {lo!r}.")
    if lo == hi:
        return replace(dim, min=lo, max=hi, default=lo, fixed=True)
    dim = replace(dim, min=lo, max=hi, step=step, sampling=sampling, fixed=False)
    if dim.type == "int":
        grid = dim.possible_values()
        default = min(grid, key=lambda v: abs(v - dim.default))
    else:
        default = min(max(dim.default, lo), hi)
        if step:  # keep the default on the tuner's grid
            default = lo + round((default - lo) / step) * step
            default = min(hi, default)
    return replace(dim, default=default if not math.isnan(default) else lo)

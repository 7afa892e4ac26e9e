"""Policy knobs, declared once: one frozen dataclass per policy, one ``knob()`` field per constant.

Every other place a knob shows up is derived from that declaration, so adding a knob is one field in the
policy's file (plus its test), never a hunt through the code base:

* the settings object (``DeepPruneContext``, also Studio's context form) gets a field ``<prefix><name>``
  with the knob's default and description (``knob_settings_fields``);
* its validation is ``Knobs.validate`` (type and range, the error names the settings field);
* the command line gets ``--<prefix>-<name>`` flags (``cli/_eval_parser.add_knob_flags``);
* ``make_policy`` hands each policy its knobs object (``DeepPruneContext.knobs``); the evaluation carries
  them as a ``KnobSet``; the proxy accepts them per request.

Pure: no I/O, no import of the settings or the policies.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from deepprune_agents.errors import ConfigError

K = TypeVar("K", bound="Knobs")
_TYPES: dict[Any, type] = {"int": int, int: int, "float": float, float: float, "bool": bool, bool: bool}


def _number(x: float | None) -> str:
    return str(x) if x is None or isinstance(x, int) else f"{x:g}"


def knob(
    default: float | bool,
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> Any:
    """A knob field: its default, what it does, and its range (inclusive; ``low_open``: ``low`` excluded;
    None: unbounded on that side). Knobs are ``int``, ``float`` or ``bool``."""
    return field(default=default, metadata={"description": description, "low": low, "high": high, "low_open": low_open})


@dataclass(frozen=True)
class KnobSpec:
    """One knob as the derived places need it (settings field, flag, validation, schema)."""

    owner: type[Knobs]
    name: str  # the field of the knobs class
    setting: str  # the settings field: the class's prefix + name
    type: type  # int, float or bool
    default: Any
    description: str
    low: float | None
    high: float | None
    low_open: bool

    @property
    def flag(self) -> str:
        return "--" + self.setting.replace("_", "-")

    def range_text(self) -> str:
        """``[0, 1]``, ``(0, 1]``, ``>= 1``, or '' (bool, or unbounded)."""
        if self.type is bool or (self.low is None and self.high is None):
            return ""
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {low}"
        if self.low is None:
            return f"<= {high}"
        return f"{'(' if self.low_open else '['}{low}, {high}]"

    def settings_description(self) -> str:
        """What Studio's form and the schema show: which policies read it, what it does, its range."""
        rng = self.range_text()
        return f"{self.owner.label()}: {self.description}" + (f" Range {rng}." if rng else "")

    def check(self, value: Any) -> None:
        """ConfigError naming the settings field when ``value`` has the wrong type or lies outside the range."""
        wanted = {int: "an integer", float: "a number", bool: "a boolean"}[self.type]
        if self.type is bool:
            ok_type = isinstance(value, bool)
        elif isinstance(value, bool):
            ok_type = False
        else:
            ok_type = isinstance(value, int) if self.type is int else isinstance(value, (int, float))
        if not ok_type:
            raise ConfigError(f"{self.setting} must be {wanted} (got {value!r}).")
        if self.type is bool:
            return
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            rng = self.range_text()
            verb = "be" if rng.startswith((">", "<")) else "lie in"
            raise ConfigError(f"{self.setting} must {verb} {rng} (got {value!r}).")


def _spec(owner: type[Knobs], f: Field[Any]) -> KnobSpec:
    if f.type not in _TYPES:
        raise TypeError(f"knob {owner.__name__}.{f.name} must be int, float or bool (got {f.type!r}).")
    if f.default is MISSING or "description" not in f.metadata:
        raise TypeError(f"knob {owner.__name__}.{f.name} must be declared with knob(default, description, ...).")
    meta = f.metadata
    return KnobSpec(
        owner=owner,
        name=f.name,
        setting=owner.prefix + f.name,
        type=_TYPES[f.type],
        default=f.default,
        description=meta["description"],
        low=meta["low"],
        high=meta["high"],
        low_open=meta["low_open"],
    )


@dataclass(frozen=True)
class Knobs:
    """Base of every policy's knobs. Subclasses are frozen dataclasses of ``knob()`` fields; ``prefix`` is
    what their settings fields and flags start with ("" for the historical unprefixed ones: ``tau``,
    ``--tau``), ``policies`` the policies that read them (shown in every description)."""

    prefix: ClassVar[str] = ""
    policies: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for spec in self.specs():
            spec.check(getattr(self, spec.name))

    @classmethod
    def label(cls) -> str:
        return "/".join(cls.policies) or cls.__name__

    @classmethod
    def specs(cls) -> list[KnobSpec]:
        return [_spec(cls, f) for f in fields(cls)]

    @classmethod
    def from_settings(cls: type[K], values: Mapping[str, Any]) -> K:
        """The knobs from their settings fields (``<prefix><name>``) in ``values``; missing ones keep defaults."""
        return cls(**{s.name: values[s.setting] for s in cls.specs() if s.setting in values})

    def as_settings(self) -> dict[str, Any]:
        return {s.setting: getattr(self, s.name) for s in self.specs()}


def all_specs(classes: Iterable[type[Knobs]]) -> list[KnobSpec]:
    """Every knob of ``classes``; two knobs with one settings name are a declaration error."""
    out: dict[str, KnobSpec] = {}
    for cls in classes:
        for spec in cls.specs():
            if spec.setting in out:
                first = out[spec.setting].owner.__name__
                raise TypeError(f"knob setting {spec.setting!r} declared twice ({first}, {cls.__name__}).")
            out[spec.setting] = spec
    return list(out.values())


def knob_settings_fields(classes: Iterable[type[Knobs]], *, after: str | None = None) -> Any:
    """Class decorator, applied *before* ``@dataclass``: adds one field per knob of ``classes`` (type,
    default, description with range) to a settings dataclass, after the field ``after`` (default: at
    the end), so the settings, their dict/env/``replace`` paths and the JSON schema all include them."""
    specs = all_specs(classes)

    def decorate(cls: type[Any]) -> type[Any]:
        own: dict[str, Any] = inspect.get_annotations(cls)
        clash = [s.setting for s in specs if s.setting in own]
        if clash:
            raise TypeError(f"{cls.__name__} declares knob settings by hand: {clash}.")
        added = {s.setting: s.type for s in specs}
        ordered: dict[str, Any] = {}
        for name, kind in own.items():
            ordered[name] = kind
            if name == after:
                ordered.update(added)
        if after not in own:
            ordered.update(added)
        cls.__annotations__ = ordered
        for s in specs:
            setattr(cls, s.setting, field(default=s.default, metadata={"description": s.settings_description()}))
        return cls

    return decorate


@dataclass(frozen=True)
class KnobSet:
    """One knobs object per class: what a policy run is configured with, without a whole settings object
    (the evaluation's config carries one)."""

    items: tuple[Knobs, ...]

    @classmethod
    def from_settings(cls, classes: Iterable[type[Knobs]], values: Mapping[str, Any]) -> KnobSet:
        """Every class's knobs from settings-named ``values`` (unknown names raise ConfigError)."""
        classes = tuple(classes)
        known = {s.setting for s in all_specs(classes)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown knob(s) {unknown}; known: {sorted(known)}.")
        return cls(tuple(k.from_settings(values) for k in classes))

    def get(self, kind: type[K]) -> K:
        for item in self.items:
            if isinstance(item, kind):
                return item
        raise KeyError(kind.__name__)

    def as_settings(self) -> dict[str, Any]:
        return {name: value for item in self.items for name, value in item.as_settings().items()}

    def replace(self, **settings: Any) -> KnobSet:
        """A copy with the knobs named by their settings fields changed (validated)."""
        return KnobSet.from_settings([type(i) for i in self.items], {**self.as_settings(), **settings})


__all__ = ["KnobSet", "KnobSpec", "Knobs", "all_specs", "knob", "knob_settings_fields"]

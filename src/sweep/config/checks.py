"""What a config field's value must be beyond its type: each field's `check` metadata in the schema."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NON_NEGATIVE", "POSITIVE", "Check", "checked"]


@dataclass(frozen=True)
class Check:
    """What a field's value must be beyond its type. `lo`/`hi` bound numbers (open or closed ends);
    `choices` lists the names a string may take; `prefixes` also accepts names that start with one."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    auto: tuple[str, ...] = ()  # strings accepted as well as a number (e.g. "auto")
    flag: bool = False  # true and false accepted as well as the choices

    def describe(self) -> str:
        if self.choices:
            extra = [f"{p}N" for p in self.prefixes]
            flags = ["true", "false"] if self.flag else []
            return "choose " + ", ".join([*self.choices, *flags, *extra])
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        rng = f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"
        return "choose a number in " + rng + "".join(f" or {a}" for a in self.auto)

    def ok(self, value: Any) -> bool:
        if value is None:
            return True  # Optional fields: None means "not set"
        if isinstance(value, bool) and self.flag:
            return True
        if isinstance(value, str):
            return (
                value in self.choices
                or value in self.auto
                or value.startswith(self.prefixes or ("\0",))
            )
        if self.choices:
            return False
        v = float(value)
        if math.isnan(v):
            return False
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return self.hi is None or not (v > self.hi or (self.hi_open and v == self.hi))


POSITIVE = Check(lo=0, lo_open=True)
NON_NEGATIVE = Check(lo=0)


def checked(default: Any, check: Check, **kw) -> Any:
    return field(default=default, metadata={"check": check}, **kw)

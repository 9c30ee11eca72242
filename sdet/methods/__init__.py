"""Plain dict registry of training methods: adding one = one file + one line here."""
from __future__ import annotations

from typing import Dict, Type

from sdet.config import MethodConfig, build_dataclass
from sdet.methods.base import Method, MethodContext
from sdet.methods.baseline import Baseline
from sdet.methods.sdet import SDET

METHODS: Dict[str, Type[Method]] = {
    "baseline": Baseline,
    "sdet": SDET,
}


def build_method(cfg: MethodConfig, ctx: MethodContext, source: str = "<config>") -> Method:
    from sdet.errors import UserError
    from sdet.config import _closest

    if cfg.name not in METHODS:
        raise UserError(f"unknown method '{cfg.name}'{_closest(cfg.name, sorted(METHODS))}", source)
    cls = METHODS[cfg.name]
    options = build_dataclass(cls.Options, cfg.options, source, prefix="method.options.")
    return cls(ctx, options)

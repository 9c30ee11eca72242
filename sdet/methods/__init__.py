"""Plain dict registry of training methods: adding one = one file + one line here."""
from __future__ import annotations

from typing import Dict, Type

from sdet.config import MethodConfig, build_dataclass
from sdet.methods.base import Method, MethodContext
from sdet.methods.baseline import Baseline
from sdet.methods.byot import BYOT
from sdet.methods.dsn import DSN
from sdet.methods.fitnets import FitNets
from sdet.methods.ka import KA
from sdet.methods.sad import SAD
from sdet.methods.sdet import SDET
from sdet.methods.skd import SKD
from sdet.methods.soft_target import SoftTarget

METHODS: Dict[str, Type[Method]] = {
    "baseline": Baseline,
    "sdet": SDET,
    "byot": BYOT,
    "dsn": DSN,
    "sad": SAD,
    "soft_target": SoftTarget,
    "fitnets": FitNets,
    "ka": KA,
    "skd": SKD,
}


def method_class(name: str, source: str = "<config>") -> Type[Method]:
    from sdet.errors import UserError
    from sdet.config import _closest

    if name not in METHODS:
        raise UserError(f"unknown method '{name}'{_closest(name, sorted(METHODS))}", source)
    return METHODS[name]


def build_method(cfg: MethodConfig, ctx: MethodContext, source: str = "<config>") -> Method:
    from sdet.errors import UserError

    cls = method_class(cfg.name, source)
    if cls.needs_teacher and ctx.teacher is None:
        raise UserError(
            f"method '{cfg.name}' needs a teacher: set method.teacher to a trained sdet checkpoint of the same "
            "detector type (e.g. method.teacher=runs/icdar2015/r50_db/best.pt)", source
        )
    if not cls.needs_teacher and (cfg.teacher or ctx.teacher is not None):
        raise UserError(f"method '{cfg.name}' does not use a teacher; remove method.teacher ('{cfg.teacher}')", source)
    options = build_dataclass(cls.Options, cfg.options, source, prefix="method.options.")
    return cls(ctx, options)

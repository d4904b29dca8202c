"""Method registry: config name → `Method` subclass (with its `Params` model).

A new method is one file in this package with a `Method` subclass, added to `METHODS` below (or registered
at run time with `register`). Config entries `{name: ..., **params}` are validated against `cls.Params`.
"""

from __future__ import annotations

from pydantic import BaseModel

from neuroplastic.methods.adaptive_rr import AdaptiveRR
from neuroplastic.methods.base import Method, MethodStack, Params, RunContext
from neuroplastic.methods.crelu import CReLU
from neuroplastic.methods.data_augmentation import DataAugmentation
from neuroplastic.methods.dense_scaled import DenseScaled
from neuroplastic.methods.grad_snr import GradSNR
from neuroplastic.methods.injection import PlasticityInjection
from neuroplastic.methods.l2_init import L2Init
from neuroplastic.methods.ne import NE, NE_ABLATIONS, NECode
from neuroplastic.methods.normalization import LayerNormMethod, NaP
from neuroplastic.methods.redo import ReDo
from neuroplastic.methods.reset import Reset
from neuroplastic.methods.shrink_perturb import ShrinkPerturb
from neuroplastic.methods.sparse import GMP, SET, RigL, Static

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method], name: str | None = None) -> type[Method]:
    key = name or cls.name
    if not key:
        raise ValueError(f"{cls.__name__} has no name")
    METHODS[key] = cls
    return cls


for _cls in (
    Reset,
    ReDo,
    PlasticityInjection,
    LayerNormMethod,
    NaP,
    CReLU,
    L2Init,
    ShrinkPerturb,
    DataAugmentation,
    AdaptiveRR,
    DenseScaled,
):
    register(_cls)


def build_stack(names: list[str], params: list[BaseModel], ctx: RunContext) -> MethodStack:
    """Instantiate the methods `names` with their resolved, typed `params`, in order."""
    methods = []
    for i, (name, p) in enumerate(zip(names, params, strict=True)):
        methods.append(METHODS[name](p, RunContext(**{**ctx.__dict__, "method_index": i})))
    return MethodStack(methods)


for _cls in (NE, NECode, *NE_ABLATIONS.values(), Static, SET, RigL, GMP, GradSNR):
    register(_cls)

__all__ = ["METHODS", "Method", "MethodStack", "Params", "RunContext", "build_stack", "register"]

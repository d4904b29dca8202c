"""Method registry: config name → `Method` subclass (with its `Params` model).

A new method is one file in this package with a `Method` subclass that sets `name`: every module of the package is
imported here, and every such class defined in one of them is registered under its name (presets too: NE's
variants are subclasses with names of their own). Tests register others at run time with `register`. Config
entries `{name: ..., **params}` are validated against `cls.Params`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from pydantic import BaseModel

from neuroplastic.methods.base import Method, MethodStack, Params, RunContext

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method], name: str | None = None) -> type[Method]:
    key = name or cls.name
    if not key:
        raise ValueError(f"{cls.__name__} has no name")
    METHODS[key] = cls
    return cls


def build_stack(names: list[str], params: list[BaseModel], ctx: RunContext) -> MethodStack:
    """Instantiate the methods `names` with their resolved, typed `params`, in order."""
    methods = []
    for i, (name, p) in enumerate(zip(names, params, strict=True)):
        methods.append(METHODS[name](p, RunContext(**{**ctx.__dict__, "method_index": i})))
    return MethodStack(methods)


def _named_methods(cls: type[Method]) -> Iterator[type[Method]]:
    """Subclasses of `cls` defined in this package that set a `name` of their own (a subclass that only
    inherits one, such as SET's base `DynamicSparse` from `Static`, is not a method of its own)."""
    for sub in cls.__subclasses__():
        if vars(sub).get("name") and sub.__module__.startswith(f"{__name__}."):
            yield sub
        yield from _named_methods(sub)


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
for _cls in _named_methods(Method):
    register(_cls)

__all__ = ["METHODS", "Method", "MethodStack", "Params", "RunContext", "build_stack", "register"]

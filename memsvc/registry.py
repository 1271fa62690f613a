"""A small generic registry: component families register backends by name, config picks one.

    STORES = Registry[VectorStore]("vector store")
    @STORES.register("memory")
    class InMemoryVectorStore: ...
    STORES.create("memory", dim=384)

An unknown name is tried as a dotted path ``package.module:Class`` or ``package.module.Class``; what it
builds must satisfy the family's ``base`` (a runtime-checkable protocol or a class) when one is given.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from memsvc.exceptions import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → factory mapping for one component family."""

    def __init__(self, family: str, base: type[Any] | None = None) -> None:
        self.family = family
        self.base = base
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise ConfigError(f"{self.family} backend {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        """Registered backend names, sorted."""
        return sorted(self._factories)

    def resolve(self, name: str) -> Callable[..., T]:
        """Factory for ``name``, or the class at a dotted path."""
        if name in self._factories:
            return self._factories[name]
        if "." in name or ":" in name:
            module_name, _, attr = name.replace(":", ".").rpartition(".")
            try:
                module = importlib.import_module(module_name)
                return getattr(module, attr)  # type: ignore[no-any-return]
            except (ImportError, AttributeError) as exc:
                raise ConfigError(
                    f"cannot import {self.family} backend {name!r}: {exc}; known: {', '.join(self.names())}"
                ) from exc
        raise ConfigError(f"unknown {self.family} backend {name!r}; known: {', '.join(self.names())}")

    def create(self, name: str, **options: Any) -> T:
        """Build the backend ``name`` with ``options``."""
        factory = self.resolve(name)
        known = f"known: {', '.join(self.names())}"
        try:
            obj = factory(**options)
        except TypeError as exc:
            raise ConfigError(f"bad options for {self.family} backend {name!r}: {exc}; {known}") from exc
        if self.base is not None and not isinstance(obj, self.base):
            raise ConfigError(
                f"{name!r} built a {type(obj).__qualname__}, which is not a {self.family} "
                f"({self.base.__qualname__}); {known}"
            )
        return obj

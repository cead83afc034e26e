"""Callbacks of the user's, attached from the config (`callbacks.extra`) or the command line
(`keisei train --callback package.module:ClassName`).

Each entry is imported and built before any work starts; anything wrong with it (not a callback,
bad keyword arguments, a hook the manager would never call) is a `ConfigError` naming the entry.
"""

from __future__ import annotations

import importlib

from keisei.config import ConfigError, ExtraCallback
from keisei.training.callback_system.base import AsyncCallback, Callback, check_hooks


def build_extra_callbacks(
    entries: list[ExtraCallback],
) -> list[tuple[Callback | AsyncCallback, int | None]]:
    """(callback, `every`) for each entry, in order."""
    built: list[tuple[Callback | AsyncCallback, int | None]] = []
    for index, entry in enumerate(entries):
        where = f"callbacks.extra[{index}] = {entry.target!r}"
        module_name, _, class_name = entry.target.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, Callback | AsyncCallback)):
            raise ConfigError(f"{where}: not a subclass of Callback or AsyncCallback")
        try:
            callback = cls(**entry.kwargs)
        except Exception as exc:
            raise ConfigError(f"{where}: building it with {entry.kwargs} failed: {exc}") from None
        try:
            check_hooks(callback)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        built.append((callback, entry.every))
    return built

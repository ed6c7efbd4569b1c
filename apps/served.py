"""A serving function by name, for either kind of trained model.

A SavedModel answers through its signature; a run directory through the same
function traced in memory from the task's `signatures` builder (kept while the model
lives), so the CLI on a run gives what its export gives.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from apps.errors import AppError

_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: functions}


def serving_function(trained, name: str, build: Callable[[], dict], key=None):
    """`trained`'s serving function `name`; `build()` gives a run's functions (once per
    model and `key`). An export made before the function existed is refused in one
    sentence."""
    if trained.is_saved_model:
        if name not in trained.signatures:
            raise AppError(f"'{trained.path}' was exported without a '{name}' signature: "
                           "export its run again to use it.")
        return trained.signatures[name]
    cache = _BUILT.setdefault(trained.model, {})
    if key not in cache:
        cache[key] = build()
    return cache[key][name]

"""What the function app registered, read the way the Functions host reads it: from its bindings.

Every function list comes through the real worker's indexing checks (`devhost.worker_index`) first.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.functions.decorators.core import Binding
from azure.functions.decorators.function_app import Function, FunctionApp

from devhost import worker_index

HTTP_TRIGGER = "httpTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
DURABLE_CLIENT = "durableClient"
SUPPORTED_INPUTS = frozenset({HTTP_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, DURABLE_CLIENT})


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: tuple[str, ...]
    request_arg: str
    client_arg: str | None
    handler: Callable[..., Any]
    takes_context: bool = False
    """The handler has a `context` parameter no binding fills: the worker passes its `func.Context`."""


@dataclass(frozen=True)
class Activity:
    name: str
    input_arg: str
    handler: Callable[..., Any]
    takes_context: bool = False


@dataclass
class Registry:
    http: list[HttpFunction]
    orchestrators: dict[str, Callable[[str], str]]
    activities: dict[str, Activity]


def _takes_context(handler: Callable[..., Any], bindings: list[Binding]) -> bool:
    """As the worker decides it (`is_context_required`): a `context` parameter that is no binding's name."""
    return "context" in inspect.signature(handler).parameters and all(b.name != "context" for b in bindings)


def _binding(bindings: list[Binding], binding_type: str) -> Binding | None:
    return next((b for b in bindings if b.type == binding_type), None)


def load(script_root: Path) -> Registry:
    """The app in `script_root/function_app.py`, indexed by the worker (once per process)."""
    return _registry(worker_index.index_app(script_root))


def discover(app: FunctionApp) -> Registry:
    """An app built in code (tests), through the worker's per-function checks."""
    return _registry(worker_index.check(app.get_functions(), Path.cwd()))


def _registry(functions: list[Function]) -> Registry:
    """Every function of the app; refuses bindings the devhost cannot serve instead of ignoring them."""
    registry = Registry(http=[], orchestrators={}, activities={})
    for function in functions:
        name = str(function.get_function_name())
        trigger = function.get_trigger()
        if trigger is None:
            raise ValueError(f"function {name} has no trigger")
        bindings = [b for b in function.get_bindings() if b.direction == 0]
        unsupported = [b.type for b in bindings if b.type not in SUPPORTED_INPUTS]
        if unsupported:
            raise ValueError(f"function {name}: the devhost does not serve {unsupported} bindings yet")
        handler = function.get_user_function()
        if trigger.type == HTTP_TRIGGER:
            client = _binding(bindings, DURABLE_CLIENT)
            methods = tuple(str(getattr(m, "value", m)).upper() for m in (getattr(trigger, "methods", None) or []))
            registry.http.append(
                HttpFunction(
                    name=name,
                    route=str(getattr(trigger, "route", None) or name),
                    methods=methods or ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"),
                    request_arg=trigger.name,
                    client_arg=client.name if client else None,
                    handler=handler,
                    takes_context=_takes_context(handler, bindings),
                )
            )
        elif trigger.type == ORCHESTRATION_TRIGGER:
            registry.orchestrators[str(getattr(trigger, "orchestration", None) or name)] = handler
        elif trigger.type == ACTIVITY_TRIGGER:
            activity = str(getattr(trigger, "activity", None) or name)
            registry.activities[activity] = Activity(
                activity, trigger.name, handler, takes_context=_takes_context(handler, bindings)
            )
    return registry

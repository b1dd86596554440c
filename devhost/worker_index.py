"""The app indexed by the real Python worker's own code, so the devhost refuses what Azure refuses.

`app.get_functions()` alone skips the worker's checks (a binding annotated `dict[str, Any]` loads
here and fails on Azure, where one refused function means no function at all). The worker's
indexing (`azure-functions-runtime`, the same code as the in-host worker for Python 3.11) runs from
`.venv/azure-worker`, which `make` fills from requirements-worker.txt. That folder is never put on
`sys.path`: its v1 wheel carries the worker's protobuf classes in a top-level `tests` package, loaded
here under a private name so it cannot shadow ours.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.functions.decorators.function_app import Function

WORKER_PACKAGES = Path(sys.prefix) / "azure-worker"
"""Where the Makefile installs requirements-worker.txt (inside the venv that runs the devhost)."""

_RUNTIME = "azure_functions_runtime"
_PROTOS = "_devhost_worker_protos"
SCRIPT_FILE = "function_app.py"
"""The worker's default script file (`PYTHON_SCRIPT_FILE_NAME` unset)."""


class AppRefused(Exception):
    """The worker would not load the app; the message is the worker's own."""


class WorkerMissing(RuntimeError):
    """The worker's packages are not installed (run `make setup`)."""


def _load_package(name: str, directory: Path) -> ModuleType:
    """Import a package from `directory` without adding it to `sys.path`."""
    spec = importlib.machinery.PathFinder.find_spec(name, [str(directory)])
    if spec is None or spec.loader is None:
        raise WorkerMissing(f"{name} is not installed in {directory}: run `make setup`")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@cache
def _worker() -> tuple[Any, Any, Any]:
    """The worker's loader, its Registry class and its protobuf module, loaded once per process."""
    if _RUNTIME not in sys.modules:
        _load_package(_RUNTIME, WORKER_PACKAGES)
    protos_dir = WORKER_PACKAGES / "tests" / "protos"
    if not (protos_dir / "FunctionRpc_pb2.py").is_file():
        raise WorkerMissing(f"the worker's protobuf classes are missing from {protos_dir}: run `make setup`")
    # A bare package (its __init__ would import grpc) so the generated modules' relative imports resolve.
    package = importlib.util.module_from_spec(importlib.util.spec_from_loader(_PROTOS, None, is_package=True))  # type: ignore[arg-type]
    package.__path__ = [str(protos_dir)]
    sys.modules[_PROTOS] = package
    protos = importlib.import_module(f"{_PROTOS}.FunctionRpc_pb2")
    loader = importlib.import_module(f"{_RUNTIME}.loader")
    functions = importlib.import_module(f"{_RUNTIME}.functions")
    meta = importlib.import_module(f"{_RUNTIME}.bindings.meta")
    meta.load_binding_registry()  # as the worker does on WorkerInitRequest, before indexing
    return loader, functions.Registry, protos


def invocation_context(function_name: str, invocation_id: str, trace_parent: str, trace_state: str) -> Any:
    """The `func.Context` the worker hands a function that asks for `context`, built by the worker's own
    `get_context` from an InvocationRequest carrying the host's trace context."""
    _, _, protos = _worker()
    request = protos.InvocationRequest(
        invocation_id=invocation_id,
        trace_context=protos.RpcTraceContext(trace_parent=trace_parent, trace_state=trace_state),
    )
    return importlib.import_module(f"{_RUNTIME}.bindings.context").get_context(request, function_name, "")


def attach_invocation_trace(context: Any) -> None:
    """What the worker does before each invocation when PYTHON_ENABLE_OPENTELEMETRY is on: the host's
    trace context becomes the current OpenTelemetry context (of the task an async function runs in)."""
    otel = importlib.import_module(f"{_RUNTIME}.otel")
    if otel.otel_manager.get_context_api() is None:
        otel.otel_manager.set_otel_libs_available(True)
        otel.update_opentelemetry_status()
    otel.configure_opentelemetry(context)


def check(functions: list[Function], script_root: Path) -> list[Function]:
    """Run the worker's per-function checks (`process_indexed_function`) on functions already indexed."""
    loader, registry, protos = _worker()
    try:
        loader.process_indexed_function(protos, registry(), functions, str(script_root))
    except Exception as error:
        raise AppRefused(f"{type(error).__name__}: {error}") from error
    return functions


def index_app(script_root: Path) -> list[Function]:
    """Import `function_app.py` from `script_root` and index it exactly as the worker does.

    `get_functions()` may run only once per process, so this can index one app per interpreter.
    """
    loader, _, _ = _worker()
    if str(script_root) not in sys.path:
        sys.path.insert(0, str(script_root))
    try:
        functions: list[Function] = loader.index_function_app(str(script_root / SCRIPT_FILE))
    except Exception as error:
        raise AppRefused(f"{type(error).__name__}: {error}") from error
    return check(functions, script_root)

"""The app indexed by the real Python worker's code, the way Azure loads it (issue 13, finding 1).

Facts: team notes, durable-local-host.md §10 — `azure_functions_runtime.loader.index_function_app`
then `process_indexed_function` → `Registry.add_indexed_function`, the checks of the worker that
serves Python 3.11 on Azure. `get_functions()` runs once per process, so each app is indexed in a
fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from devhost.process import free_port
from shared.config import REPOSITORY_ROOT

INDEX_THE_APP = """
import json, sys
from pathlib import Path
from devhost.worker_index import index_app
functions = index_app(Path(sys.argv[1]))
print(json.dumps(sorted(f.get_function_name() for f in functions)))
print("loaded modules named tests:", sorted(m for m in sys.modules if m == "tests" or m.startswith("tests.")))
"""

BAD_APP = """
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.activity_trigger(input_name="request")
def transcribe(request: dict[str, Any]) -> dict[str, Any]:
    return request
"""

WORKER_REFUSAL = (
    "FunctionLoadError: cannot load the transcribe function: binding request has invalid non-type "
    "annotation dict[str, typing.Any]"
)


def test_finding_1_the_app_indexes_through_the_python_workers_own_code_with_no_problem() -> None:
    result = subprocess.run(
        [sys.executable, "-c", INDEX_THE_APP, str(REPOSITORY_ROOT)],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names_line, modules_line = result.stdout.strip().splitlines()[-2:]
    names = json.loads(names_line)
    activities = {"answer_turn", "publish", "summarize", "finalize"}
    assert activities | {"conversation", "health", "start_conversation", "take_turn"} <= set(names)
    assert modules_line == "loaded modules named tests: []"  # the worker's `tests.protos` never shadows ours


def test_finding_1_the_devhost_refuses_an_app_the_worker_refuses_with_the_workers_message(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(textwrap.dedent(BAD_APP))
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "--script-root",
            str(tmp_path),
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert WORKER_REFUSAL in result.stderr
    assert not (tmp_path / "data").exists()  # refused before any stand-in was started


def test_finding_11_the_devhost_refuses_a_reply_timeout_azure_would_cut(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        cwd=REPOSITORY_ROOT,
        env={"PATH": "/usr/bin:/bin", "TURN_REPLY_TIMEOUT_SECONDS": "240"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "TURN_REPLY_TIMEOUT_SECONDS='240': Input should be less than or equal to 200" in result.stderr
    assert "Azure's front end cuts every HTTP request at 230 s" in result.stderr

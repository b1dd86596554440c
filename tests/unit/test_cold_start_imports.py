"""Cold start: importing the app loads the Functions and Durable SDKs and the domain types, nothing more.

The language-model, speech, search and document-loading SDKs, LangChain, the storage clients and the
audio stack load on a function's first call (`bench/cold_start.py` times the import).
"""

from __future__ import annotations

import json
import subprocess
import sys

from shared.config import REPOSITORY_ROOT

DEFERRED = (
    "openai",
    "langchain_openai",
    "azure.identity",
    "azure.search",
    "tiktoken",
    "pypdf",
    "bs4",
    "langchain_text_splitters",
    "sarvamai",
    "langchain_core",
    "numpy",
    "soxr",
    "redis",
    "psycopg",
    "psycopg_pool",
    "pgvector",
    "yoyo",
    "azure.storage",
    "pydantic_settings",
    "jwt",
    "cryptography",
    "phonenumbers",
    "twilio",
    "vonage_jwt",
    "vonage_voice",
    "vonage_http_client",
    "vonage_utils",
    "azure.messaging",
    # The Durable SDK brings the OpenTelemetry API; the SDK, its exporters and the metrics API wait for
    # telemetry's first use (shared/telemetry.py).
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.metrics",
    "azure.monitor",
    "prometheus_client",
)

LOADED_DEFERRED_MODULES = f"""
import json, sys
import function_app
sdks = {DEFERRED!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == s or m.startswith(s + ".") for s in sdks))))
"""


def test_importing_the_function_app_loads_no_vendor_sdk_storage_client_or_langchain() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED_DEFERRED_MODULES],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

"""Cold start: importing the app must not load the language-model, speech, search or document-loading
vendor SDKs (they load on first use)."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.config import REPOSITORY_ROOT

VENDOR_SDKS = (
    "openai",
    "langchain_openai",
    "azure.identity",
    "azure.search",
    "tiktoken",
    "pypdf",
    "bs4",
    "langchain_text_splitters",
    "sarvamai",
)

LOADED_VENDOR_MODULES = f"""
import json, sys
import function_app
sdks = {VENDOR_SDKS!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == s or m.startswith(s + ".") for s in sdks))))
"""


def test_importing_the_function_app_loads_no_language_model_sdk() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED_VENDOR_MODULES],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

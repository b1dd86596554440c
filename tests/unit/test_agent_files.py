"""Agent files are the agent's whole configuration: a bad one is refused with the file, the field and why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.agent.catalog import AgentFileError, load_agent_file
from shared.config import REPOSITORY_ROOT

MINIMAL = 'name = "shop"\ndisplay_name = "Shop"\ngreeting = "Hi"\n'
ORDER_TOOL = """
[[tools]]
name = "order_status"
description = "Look up an order"
url = "https://orders.example.com/status"
parameters = { type = "object", properties = { order_id = { type = "string" } } }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shop.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_agent_file_loads_with_its_model_tools_transfer_number_and_extraction(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + 'instructions = "Sell tea."\ntransfer_number = "+14155550100"\n'
        + "[model]\ntemperature = 0.0\nmax_tokens = 120\n"
        + '[extraction.order_number]\ndescription = "The order number"\ntype = "integer"\n'
        + ORDER_TOOL
        + 'method = "GET"\ntimeout_seconds = 2.5\noffline_pattern = "order (?P<order_id>\\\\d+)"\n'
    )

    agent = load_agent_file(write(tmp_path, text))

    assert (agent.model.temperature, agent.model.max_tokens) == (0.0, 120)
    assert agent.transfer_number == "+14155550100"
    assert agent.extraction["order_number"].type == "integer"
    [tool] = agent.tools
    assert (tool.name, tool.method, tool.timeout_seconds) == ("order_status", "GET", 2.5)


@pytest.mark.parametrize(
    ("addition", "field", "why"),
    [
        ("colour = 'blue'\n", "colour", "Extra inputs are not permitted"),
        ('transfer_number = "0800 123"\n', "transfer_number", "String should match pattern"),
        ("[model]\ntemperature = 3\n", "model.temperature", "less than or equal to 2"),
        ("[model]\nmax_tokens = 100000\n", "model.max_tokens", "less than or equal to 4096"),
        ('[extraction.x]\ndescription = "x"\ntype = "date"\n', "extraction.x.type", "Input should be"),
        (ORDER_TOOL.replace("https://orders", "ftp://orders"), "tools.0.url", "String should match pattern"),
        (ORDER_TOOL.replace('name = "order_status"', 'name = "end_call"'), "(file)", "built-in tools"),
        (ORDER_TOOL + ORDER_TOOL, "(file)", "must be unique"),
        (ORDER_TOOL.replace('type = "object"', 'type = "array"'), "tools.0", '"type": "object"'),
        (ORDER_TOOL.replace('{ type = "string" }', '{ type = "text" }'), "tools.0", "not a valid JSON Schema"),
        (ORDER_TOOL + "timeout_seconds = 60\n", "tools.0.timeout_seconds", "less than or equal to 10"),
        (ORDER_TOOL + 'offline_pattern = "(?P<colour>x)"\n', "tools.0", "parameters do not have: ['colour']"),
        (ORDER_TOOL + 'offline_pattern = "(unclosed"\n', "tools.0", "not a regular expression"),
    ],
)
def test_a_bad_field_is_refused_with_the_file_the_field_and_why(
    tmp_path: Path, addition: str, field: str, why: str
) -> None:
    with pytest.raises(AgentFileError) as refused:
        load_agent_file(write(tmp_path, MINIMAL + addition))

    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'shop.toml'}: {field}: "), message
    assert why in message


def test_a_file_that_is_not_toml_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(AgentFileError, match=r"shop\.toml: .*line 1"):
        load_agent_file(write(tmp_path, "name = \n"))


def test_the_devhost_refuses_to_start_on_a_bad_agent_file_and_says_which_and_why(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL + 'transfer_number = "call me"\n')
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}

    started = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", "0", "--data-dir", str(tmp_path / "data")],
        cwd=REPOSITORY_ROOT,
        env=environment | {"AGENTS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert started.returncode == 1
    assert "refusing to start, an agent file is not valid" in started.stderr
    assert "shop.toml: transfer_number: String should match pattern" in started.stderr
    assert not (tmp_path / "data").exists(), "nothing was started"

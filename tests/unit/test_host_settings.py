"""Limits the Functions host imposes, read and bounded before the devhost starts (issue 13, finding 11)."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from devhost import access, hostjson
from devhost.management import client_binding
from shared.config import Settings


def test_host_json_sets_a_function_timeout_the_devhost_reads() -> None:
    """Flex Consumption's default is 30 min; the repo asks for 5 (Microsoft docs, "Function app timeout")."""
    assert hostjson.function_timeout_seconds() == 300
    assert hostjson.route_prefix() == "api"


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:05:00", 300), ("01:00:00", 3600), ("1.00:00:01", 86401), ("00:00:00.5", 0.5)]
)
def test_function_timeout_is_read_as_a_dotnet_timespan(text: str, seconds: float) -> None:
    assert hostjson.parse_timespan(text) == seconds


def test_function_timeout_minus_one_is_unbounded_and_absent_is_the_flex_default(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0", "functionTimeout": "-1"}))
    assert hostjson.function_timeout_seconds(host_json) == math.inf
    host_json.write_text(json.dumps({"version": "2.0"}))
    assert hostjson.function_timeout_seconds(host_json) == hostjson.DEFAULT_FUNCTION_TIMEOUT_SECONDS


def test_a_malformed_function_timeout_is_refused(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"functionTimeout": "5 minutes"}))
    with pytest.raises(ValueError, match="TimeSpan"):
        hostjson.function_timeout_seconds(host_json)


def test_finding_11_reply_timeout_is_bounded_below_azures_230_s_http_limit() -> None:
    assert Settings(turn_reply_timeout_seconds=200).turn_reply_timeout_seconds == 200
    with pytest.raises(ValidationError, match="less than or equal to 200"):
        Settings(turn_reply_timeout_seconds=231)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("devbox", False),
    ],
)
def test_finding_12_only_a_loopback_bind_goes_without_the_host_key(host: str, loopback: bool) -> None:
    assert access.is_loopback(host) is loopback


def test_finding_12_the_host_key_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    (tmp_path / access.KEY_FILE).write_text("old")
    (tmp_path / access.KEY_FILE).chmod(0o644)
    key = access.new_system_key(tmp_path)
    path = tmp_path / access.KEY_FILE
    assert path.read_text().strip() == key
    assert len(key) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert access.new_system_key(tmp_path) != key


def test_finding_12_client_binding_urls_carry_the_key_as_the_durable_extension_puts_it() -> None:
    """`HttpApiHandler`: creation and management URLs end with the universal query `code=<key>`;
    `requiredQueryStringParameters` is that query; `rpcBaseUrl` is a loopback listener without a key."""
    binding = json.loads(access.with_system_key(client_binding("http://0.0.0.0:7071"), "k3y", "http://127.0.0.1:9/x/"))
    status_url = binding["managementUrls"]["statusQueryGetUri"]
    assert status_url.endswith("?taskHub=DevHostHub&connection=Storage&code=k3y")
    assert binding["creationUrls"]["createNewInstancePostUri"].endswith("&code=k3y")
    assert binding["managementUrls"]["id"] == "INSTANCEID"
    assert binding["requiredQueryStringParameters"] == "code=k3y"
    assert binding["rpcBaseUrl"] == "http://127.0.0.1:9/x/"

"""The Bicep under bicep/, checked offline: no Bicep CLI can be installed here (docs/azure-deploy notes, §8).

tree-sitter-bicep checks the syntax; the structural tests check what a deployment depends on: roles by
well-known id only, no secret literal, app settings the app or the Functions host reads, outputs azd keeps,
and the Durable backend host.json and Bicep agree on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import tree_sitter_bicep
import yaml
from tree_sitter import Language, Node, Parser

from shared.config import REPOSITORY_ROOT, Settings

BICEP = REPOSITORY_ROOT / "bicep"
BICEP_FILES = sorted(BICEP.rglob("*.bicep"))
PARAMETER_FILES = sorted(BICEP.rglob("*.parameters.json"))
FUNCTION_APP = BICEP / "modules" / "function-app.bicep"
POSTGRES = BICEP / "modules" / "postgres.bicep"
REDIS = BICEP / "modules" / "redis.bicep"
WEB_PUBSUB = BICEP / "modules" / "webpubsub.bicep"
POST_PROVISION_OUTPUTS = ("DATABASE_ADMIN", "AZURE_IDENTITY_NAME", "AZURE_IDENTITY_PRINCIPAL_ID")
"""Outputs scripts/postprovision.py reads from the azd environment, beside DATABASE_URL."""

# Built-in roles the app's identity (or the deploying user) is given, by their well-known ids
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles). Anything else is refused.
KNOWN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "0ad04412-c4d5-4796-b79c-f76d14c8d402": "Durable Task Data Contributor",
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": "Cognitive Services OpenAI User",
    "8ebe5a00-799e-43f5-93ac-243d3dce84a7": "Search Index Data Contributor",
    "7ca78c08-252a-4471-8644-bb5ff32d4ba0": "Search Service Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "12cf5a90-567b-43ae-8102-96cf46c7d9b4": "Web PubSub Service Owner",
}

# App settings read by the Functions host, its extensions or azure-identity rather than shared/config.py.
HOST_SETTING_PREFIXES = ("AzureWebJobsStorage__", "AzureFunctionsJobHost__")
HOST_SETTINGS = {
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # the host's Entra-authenticated telemetry
    "AZURE_CLIENT_ID",  # DefaultAzureCredential: which user-assigned identity
    "TASKHUB_NAME",  # host.json's "%TASKHUB_NAME%"
    "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",  # named by the storageProvider override
    "PYTHON_ENABLE_OPENTELEMETRY",  # the Python worker: the invocation's trace context made current
}

SECRET_PATTERNS = {
    "storage key": re.compile(r"AccountKey\s*=", re.IGNORECASE),
    "SAS token": re.compile(r"(SharedAccessSignature|[?&]sig=)", re.IGNORECASE),
    "key listing": re.compile(r"\blist(Keys|Secrets|ConnectionStrings)\s*\(", re.IGNORECASE),
    "password": re.compile(r"password\s*[:=]\s*'[^']+'", re.IGNORECASE),
    "OpenAI key": re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    # Mixed case and a digit: a key, not a resource type path (`DBforPostgreSQL/flexibleServers/...`).
    "long base64": re.compile(
        r"(?=[A-Za-z+/]*[0-9])(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{40,}={0,2}"
    ),
}


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


def _parse(source: bytes) -> Node:
    return _parser().parse(source).root_node


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _text(node: Node) -> str:
    assert node.text is not None
    return node.text.decode()


def _syntax_errors(source: bytes) -> list[str]:
    return [
        f"line {node.start_point.row + 1}: {'missing ' + node.type if node.is_missing else 'error'}"
        for node in _walk(_parse(source))
        if node.type == "ERROR" or node.is_missing
    ]


def _declarations(path: Path, kind: str) -> dict[str, Node]:
    """Top-level declarations of one kind (`parameter`, `variable`, `output`, `module`), by name."""
    root = _parse(path.read_bytes())
    found = {}
    for node in root.children:
        if node.type == f"{kind}_declaration":
            name = next(child for child in node.children if child.type == "identifier")
            found[_text(name)] = node
    return found


def _key(prop: Node) -> str:
    key = prop.children[0]
    return _text(key).strip("'") if key.type == "string" else _text(key)


def _top_level_keys(node: Node) -> list[str]:
    """Keys of the object literals in an expression, not of objects nested inside them."""
    if node.type == "object":
        return [_key(child) for child in node.children if child.type == "object_property"]
    return [key for child in node.children for key in _top_level_keys(child)]


def _app_settings() -> set[str]:
    variables = _declarations(FUNCTION_APP, "variable")
    names = ("hostStorageSettings", "azureStorageBackendSettings", "schedulerSettings", "appSettings")
    return {key for name in names for key in _top_level_keys(variables[name])}


def _settings_env_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_bicep_files_exist_as_the_issue_names_them() -> None:
    assert (BICEP / "main.bicep").is_file()
    assert (BICEP / "main.parameters.json").is_file()
    assert len(list((BICEP / "modules").glob("*.bicep"))) >= 5


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(BICEP)))
def test_every_bicep_file_parses_without_error_nodes(path: Path) -> None:
    assert _syntax_errors(path.read_bytes()) == []


@pytest.mark.parametrize(
    "source",
    [
        "param p int = \n",  # a missing value
        "var x string = 'typed variables are a known tree-sitter-bicep gap'\n",
        "var merged = { ...a, b: 1 }\n",  # spread: another known gap
    ],
)
def test_the_syntax_check_finds_errors(source: str) -> None:
    """The parser does report broken (or, for it, unknown) Bicep, so a clean parse means something."""
    assert _syntax_errors(source.encode()) != []


def test_main_targets_the_subscription_and_tags_for_azd() -> None:
    main = (BICEP / "main.bicep").read_text()
    assert re.search(r"^targetScope = 'subscription'$", main, re.MULTILINE)
    assert "'azd-env-name': environmentName" in main
    assert "uniqueString(subscription().id, environmentName, location)" in main
    assert "'azd-service-name': 'api'" in FUNCTION_APP.read_text()


def test_every_module_is_used_and_every_used_module_exists() -> None:
    used = {path.resolve() for path in _module_files().values()}
    assert used == {path.resolve() for path in (BICEP / "modules").glob("*.bicep")}


def _module_files() -> dict[str, Path]:
    """main.bicep's modules: symbolic name -> file."""
    return {
        name: BICEP / _text(node).split("'")[1]  # module name 'path' = ...
        for name, node in _declarations(BICEP / "main.bicep", "module").items()
    }


def _module_params(node: Node) -> set[str]:
    body = next(child for child in _walk(node) if child.type == "object")
    params = next(prop for prop in body.children if prop.type == "object_property" and _key(prop) == "params")
    return set(_top_level_keys(params.children[-1]))


@pytest.mark.parametrize("module", sorted(_module_files()))
def test_main_passes_each_module_exactly_the_parameters_it_declares(module: str) -> None:
    """What the Bicep compiler would refuse, checked here: a required parameter left out, or an unknown one."""
    path = _module_files()[module]
    declared = _declarations(path, "parameter")
    required = {name for name, node in declared.items() if "=" not in _text(node)}
    given = _module_params(_declarations(BICEP / "main.bicep", "module")[module])
    assert required <= given, f"missing: {sorted(required - given)}"
    assert given <= set(declared), f"unknown: {sorted(given - set(declared))}"


def test_every_module_output_main_reads_exists() -> None:
    modules = _module_files()
    read = set(re.findall(r"\b(\w+)!?\.outputs\.(\w+)", (BICEP / "main.bicep").read_text()))
    assert read
    for module, output in read:
        assert output in _declarations(modules[module], "output"), f"{module}.outputs.{output}"


@pytest.mark.parametrize("path", BICEP_FILES + PARAMETER_FILES, ids=lambda p: str(p.relative_to(BICEP)))
def test_no_secret_literal(path: Path) -> None:
    text = path.read_text()
    found = [label for label, pattern in SECRET_PATTERNS.items() if pattern.search(text)]
    assert found == []


def test_the_secret_check_finds_secrets() -> None:
    planted = "var c = 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc'\nparam p = listKeys(x, '1').keys\n"
    assert {label for label, pattern in SECRET_PATTERNS.items() if pattern.search(planted)} == {
        "storage key",
        "key listing",
    }
    key = "var k = 'q8Zr0VxT2mLkP9wYb4NcD7sGh1JfA6uEo3Ri5Kt0=='\n"
    assert SECRET_PATTERNS["long base64"].search(key)
    assert not SECRET_PATTERNS["long base64"].search(
        "'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-07-01'"
    )


def test_parameters_file_only_passes_azd_environment_values() -> None:
    document = json.loads((BICEP / "main.parameters.json").read_text())
    parameters = document["parameters"]
    main_params = _declarations(BICEP / "main.bicep", "parameter")
    required = {name for name, node in main_params.items() if "=" not in _text(node)}
    assert required <= set(parameters), "every parameter without a default is given"
    assert set(parameters) <= set(main_params), "no parameter main.bicep does not declare"
    for entry in parameters.values():
        assert re.fullmatch(r"\$\{[A-Z_]+\}", entry["value"]), "values come from the azd environment"


def test_every_role_assignment_uses_a_known_built_in_role() -> None:
    assignments = 0
    for path in BICEP_FILES:
        text = path.read_text()
        for guid in re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text, re.IGNORECASE):
            assert guid.lower() in KNOWN_ROLES, f"{path.name}: unknown role id {guid}"
        for line in re.findall(r"roleDefinitionId:.*", text):
            assignments += 1
            assert "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', " in line, line
        assert "roleAssignments@" not in text or "principalType:" in text
    assert assignments >= len(KNOWN_ROLES)
    used = " ".join(path.read_text() for path in BICEP_FILES)
    assert all(guid in used for guid in KNOWN_ROLES), "the role table names only roles the Bicep assigns"


def test_every_azure_client_the_code_builds_has_a_role() -> None:
    """Blob, Azure OpenAI and the Functions host's storage, telemetry and Durable backend."""
    storage = (BICEP / "modules" / "storage.bicep").read_text()
    assert "b7e6dc6d-f1e8-4753-8033-0f276bb0955b" in storage
    assert "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd" in (BICEP / "modules" / "openai.bicep").read_text()
    assert "3913510d-42f4-4e42-8a64-420c390055eb" in (BICEP / "modules" / "monitoring.bicep").read_text()
    assert "0ad04412-c4d5-4796-b79c-f76d14c8d402" in (BICEP / "modules" / "durable-task.bicep").read_text()
    search = (BICEP / "modules" / "search.bicep").read_text()
    assert "8ebe5a00-799e-43f5-93ac-243d3dce84a7" in search
    assert "7ca78c08-252a-4471-8644-bb5ff32d4ba0" in search, "the app creates its index"
    assert "4633458b-17de-408a-b874-0445c86b69e6" in (BICEP / "modules" / "key-vault.bicep").read_text()


def test_secrets_come_from_key_vault_references() -> None:
    """The audio URL signing key is a secret: the app reads it through Key Vault, by identity. DATABASE_URL and
    REDIS_URL hold none any more (Entra tokens), so they are plain settings."""
    default = _declarations(BICEP / "main.bicep", "parameter")["secretSettings"]
    names = [_text(node).strip("'") for node in _walk(default) if node.type == "string"]
    assert set(names) == {"AUDIO_URL_SIGNING_KEY"}
    assert set(names) <= _settings_env_names()
    function_app = FUNCTION_APP.read_text()
    assert "keyVaultReferenceIdentity: identityId" in function_app
    assert "'@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=" in function_app
    assert "enableRbacAuthorization: true" in (BICEP / "modules" / "key-vault.bicep").read_text()


def test_every_app_setting_is_one_the_app_or_the_functions_host_reads() -> None:
    settings = _app_settings()
    assert "BLOB_ACCOUNT_URL" in settings
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
    unknown = {
        name
        for name in settings
        if name not in _settings_env_names()
        and name not in HOST_SETTINGS
        and not name.startswith(HOST_SETTING_PREFIXES)
    }
    assert unknown == set()


def test_no_app_setting_carries_a_key_or_a_secret_setting() -> None:
    secret_fields = {
        name.upper() for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
    }
    assert "AZURE_OPENAI_API_KEY" in secret_fields
    assert _app_settings() & secret_fields == {"APPLICATIONINSIGHTS_CONNECTION_STRING"}, (
        "only the telemetry connection string, which holds no key once local auth is off"
    )
    assert "DisableLocalAuth: true" in (BICEP / "modules" / "monitoring.bicep").read_text()


def test_host_json_and_bicep_agree_on_the_durable_backend() -> None:
    """host.json keeps the Azure Storage provider the devhost and Azurite speak; Bicep's default switches the
    deployed app to Durable Task Scheduler with `AzureFunctionsJobHost__` overrides of that very setting."""
    host = json.loads((REPOSITORY_ROOT / "host.json").read_text())
    durable = host["extensions"]["durableTask"]
    assert "storageProvider" not in durable, "host.json: the Azure Storage provider (the default)"
    assert durable["hubName"] == "%TASKHUB_NAME%"

    main_params = _declarations(BICEP / "main.bicep", "parameter")
    assert "= 'durableTaskScheduler'" in _text(main_params["durableBackend"])
    scheduler = _top_level_keys(_declarations(FUNCTION_APP, "variable")["schedulerSettings"])
    prefix = "AzureFunctionsJobHost__extensions__durableTask__storageProvider__"
    assert {f"{prefix}type", f"{prefix}connectionStringName"} <= set(scheduler)
    function_app = FUNCTION_APP.read_text()
    assert f"{prefix}type: 'azureManaged'" in function_app
    assert f"{prefix}connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'" in function_app
    assert "TASKHUB_NAME" in _app_settings()
    # The Azure Storage backend needs the host's queues and tables, by identity.
    fallback = set(_top_level_keys(_declarations(FUNCTION_APP, "variable")["azureStorageBackendSettings"]))
    assert fallback == {"AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__tableServiceUri"}


def test_outputs_feed_the_azd_environment() -> None:
    outputs = set(_declarations(BICEP / "main.bicep", "output"))
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in outputs), "azd keeps UPPER_SNAKE outputs"
    assert {"AZURE_LOCATION", "AZURE_TENANT_ID", "AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME"} <= outputs
    app_outputs = outputs - {"AZURE_LOCATION", "AZURE_TENANT_ID", "AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME"}
    app_outputs -= {"SERVICE_API_URI", "AZURE_KEY_VAULT_NAME"}  # for the operator
    app_outputs -= set(POST_PROVISION_OUTPUTS)
    assert app_outputs <= _settings_env_names() | HOST_SETTINGS, "other outputs are settings the app reads"


def test_azure_yaml_deploys_the_function_app_from_the_bicep() -> None:
    document = yaml.safe_load((REPOSITORY_ROOT / "azure.yaml").read_text())
    api = document["services"]["api"]
    assert (api["language"], api["host"], api["project"]) == ("python", "function", ".")
    assert document["infra"]["provider"] == "bicep"
    assert (REPOSITORY_ROOT / document["infra"]["path"] / f"{document['infra']['module']}.bicep").is_file()
    assert set(document["services"]) == {"api"}


def test_function_app_is_flex_consumption_python_311_with_identity_storage() -> None:
    text = FUNCTION_APP.read_text()
    assert "name: 'FC1'" in text
    assert "tier: 'FlexConsumption'" in text
    assert re.search(r"name: 'python'\s+version: '3.11'", text)
    assert "instanceMemoryMB: instanceMemoryMB" in text
    assert "maximumInstanceCount: maximumInstanceCount" in text
    assert "type: 'UserAssignedIdentity'" in text
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in text
    assert "allowSharedKeyAccess: false" in (BICEP / "modules" / "storage.bicep").read_text()


def _readme_thresholds() -> list[float]:
    """The "alert when" column of dashboards/README.md's alert tables (the panels', then those without a
    panel): `above 1500 ms` -> 1500."""
    section = (REPOSITORY_ROOT / "dashboards" / "README.md").read_text().split("## Alert thresholds", 1)[1]
    return [float(value) for value in re.findall(r"^\|[^|]+\| above ([0-9.]+)", section, re.MULTILINE)]


def test_alert_rules_fire_at_the_thresholds_the_dashboards_draw() -> None:
    alerts = _declarations(BICEP / "modules" / "alerts.bicep", "variable")["alerts"]
    thresholds = []
    for prop in _walk(alerts):
        if prop.type == "object_property" and _key(prop) == "threshold":
            value = _text(prop.children[-1])
            thresholds.append(float(value.removeprefix("json('").removesuffix("')")))
    assert len(_readme_thresholds()) == 6, "four drawn on panels, two without a panel"
    assert thresholds == _readme_thresholds()


def test_the_workbook_deployed_is_the_one_in_dashboards() -> None:
    alerts = (BICEP / "modules" / "alerts.bicep").read_text()
    assert "serializedData: loadTextContent('../../dashboards/azure-workbook.json')" in alerts
    assert (BICEP / "modules" / "../../dashboards/azure-workbook.json").is_file()


def _app_setting_values() -> dict[str, str]:
    """The function app's literal settings, by name: `NAME: 'value'` -> value (other expressions as written)."""
    values = {}
    for prop in _walk(_declarations(FUNCTION_APP, "variable")["appSettings"]):
        if prop.type == "object_property":
            values[_key(prop)] = _text(prop.children[-1])
    return values


def test_the_app_reaches_postgres_redis_and_web_pubsub_by_identity() -> None:
    """The settings issue 11 names, each given, and the Entra switches on."""
    values = _app_setting_values()
    required = {
        "DATABASE_URL",
        "DATABASE_ENTRA_AUTH",
        "REDIS_URL",
        "REDIS_ENTRA_AUTH",
        "WEB_PUBSUB_ENDPOINT",
        "WEB_PUBSUB_HUB",
        "WEB_PUBSUB_UPSTREAM_AUDIENCE",
        "WEB_PUBSUB_UPSTREAM_PRINCIPAL_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "PUBLIC_BASE_URL",
    }
    assert required <= set(values)
    assert values["DATABASE_ENTRA_AUTH"] == values["REDIS_ENTRA_AUTH"] == "'true'"
    assert values["PUBLIC_BASE_URL"].startswith("'https://")
    assert "WEB_PUBSUB_CONNECTION_STRING" not in values, "local auth is off: no key to put in one"
    assert {"database_entra_auth", "redis_entra_auth"} <= set(Settings.model_fields)


def test_the_database_url_names_a_role_and_no_password() -> None:
    main = (BICEP / "main.bicep").read_text()
    url = re.search(r"^var databaseUrl = '(.*)'$", main, re.MULTILINE)
    assert url is not None
    assert url.group(1).startswith("postgresql://${identity.outputs.name}@${postgres.outputs.host}:5432/")
    assert url.group(1).endswith("?sslmode=require")
    assert "output DATABASE_URL string = databaseUrl" in main
    assert "output url string = 'rediss://${cache.properties.hostName}:10000'" in REDIS.read_text()


def test_postgres_is_entra_only_with_vector_and_its_resilience_as_parameters() -> None:
    text = POSTGRES.read_text()
    assert "activeDirectoryAuth: 'Enabled'" in text
    assert "passwordAuth: 'Disabled'" in text
    assert "administratorLogin" not in text, "no password login exists"
    assert re.search(r"name: 'azure.extensions'\s+properties: \{\s+value: '[A-Z_,]*VECTOR", text)
    assert "flexibleServers/administrators@" in text
    assert "backupRetentionDays: backupRetentionDays" in text
    assert "geoRedundantBackup: geoRedundantBackup ? 'Enabled' : 'Disabled'" in text
    assert "mode: highAvailability" in text
    main_params = _declarations(BICEP / "main.bicep", "parameter")
    for name in ("postgresBackupRetentionDays", "postgresGeoRedundantBackup", "postgresHighAvailability"):
        assert name in main_params


def test_redis_is_azure_managed_redis_with_access_keys_off() -> None:
    text = REDIS.read_text()
    assert "'Microsoft.Cache/redisEnterprise@" in text
    assert "'Microsoft.Cache/redis@" not in text, "new Azure Cache for Redis caches can no longer be made"
    assert "accessKeysAuthentication: 'Disabled'" in text
    assert re.search(r"accessPolicyAssignments@[0-9-]+' = \{[^}]*accessPolicyName: 'default'", text, re.DOTALL)
    assert "objectId: principalId" in text
    assert "clusteringPolicy: 'NoCluster'" in text, "the app's client is a plain (not cluster-aware) redis-py"


def test_web_pubsub_has_local_auth_off_and_calls_the_events_route_with_its_identity() -> None:
    text = WEB_PUBSUB.read_text()
    assert "disableLocalAuth: true" in text
    assert "urlTemplate: 'https://${appHostName}/api/realtime/events'" in text
    assert re.search(r"auth: \{\s+type: 'ManagedIdentity'\s+managedIdentity: \{\s+resource: upstreamAudience", text)
    assert "type: 'SystemAssigned'" in text
    assert "output principalId string = service.identity.principalId" in text
    assert "12cf5a90-567b-43ae-8102-96cf46c7d9b4" in text, "Web PubSub Service Owner, for the app's identity"
    routes = " ".join(path.read_text() for path in (REPOSITORY_ROOT / "functions").glob("*.py"))
    assert "realtime/events" in routes


def test_post_provision_hooks_run_the_script_with_what_it_reads() -> None:
    document = yaml.safe_load((REPOSITORY_ROOT / "azure.yaml").read_text())
    for hook in ("postprovision", "predeploy"):
        for platform in ("posix", "windows"):
            assert document["hooks"][hook][platform]["run"].endswith("python -m scripts.postprovision")
    assert (REPOSITORY_ROOT / "scripts" / "postprovision.py").is_file()
    outputs = set(_declarations(BICEP / "main.bicep", "output"))
    from scripts.postprovision import REQUIRED

    assert set(REQUIRED) <= outputs
    assert set(REQUIRED) - {"DATABASE_URL"} == set(POST_PROVISION_OUTPUTS)
    assert "scripts" in (REPOSITORY_ROOT / ".funcignore").read_text().split()


def test_a_deployed_app_joins_the_hosts_traces_and_names_the_tenant_that_reads_its_metrics() -> None:
    """Without these, /api/metrics answers 403 to everyone and HTTP spans miss the host's request."""
    values = _app_setting_values()
    assert values["PYTHON_ENABLE_OPENTELEMETRY"] == "'true'"
    assert values["OPERATOR_TENANT"] == "operatorTenant"
    assert "operator_tenant" in Settings.model_fields

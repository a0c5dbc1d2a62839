"""infra/**/*.bicep read offline (pycep-parser; no `az bicep` here): the app settings the template writes are
settings the app reads, its secrets reach the app only as Key Vault references and no account key reaches it at
all, no output discloses one, every role assignment names the app's own identity, the plan is Flex Consumption,
private endpoints come only with private networking, the alert rules read metrics the app emits, and the
operator console is behind Entra ID sign-in or off, never open. azure.yaml points azd at the same template.
infra/deploy.sh runs against a stand-in `az` (and a stand-in `eventstore` CLI) that record what they are given.

pycep gives an expression as JSON: an object literal is a dict, an operator or function call a dict with the
single key `operator` or `function`, and a symbol (parameter, variable, resource) the bare string of its
name, which a literal string looks the same as: a string equal to a declared symbol is taken as that symbol.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
import typing
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no types; types-PyYAML is not a dependency
from pycep import BicepParser
from pydantic import AliasChoices, BaseModel, SecretStr

from eventstore.settings import Settings
from eventstore.telemetry import FEED_PUBLISH_DURATION, VIEW_CATCH_UP_DURATION
from tests.helpers import PROJECT_ROOT

INFRA = PROJECT_ROOT / "infra"
MAIN = INFRA / "main.bicep"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
# A versionless secret URI: the app reads the secret's latest version.
KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=\$\{(\w+)\.properties\.secretUri\}\)$")
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
LIST_CALL = re.compile(r"\blist\w*\(")
CONSOLE_ACCESS = "EVENTSTORE_CONSOLE_ACCESS"

Json = Any  # what pycep returns: JSON values of any shape


@cache
def template() -> dict[str, Json]:
    return dict(BicepParser().parse(file_path=MAIN))


def body(resource: Json) -> dict[str, Json]:
    """A resource's declaration, under its `if (...)` when it has one."""
    config: dict[str, Json] = resource["config"]
    return config["config"] if "condition" in config else config


def resources_of_type(kind: str) -> dict[str, dict[str, Json]]:
    return {name: r for name, r in template()["resources"].items() if r["type"] == kind}


def the_one(kind: str) -> str:
    (name,) = resources_of_type(kind)
    return name


def symbols() -> set[str]:
    t = template()
    return set(t["parameters"]) | set(t["variables"]) | set(t["resources"]) | set(t.get("modules") or {})


def is_expression(node: Json) -> bool:
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in ("operator", "function")


def references(node: Json) -> Iterator[str]:
    """The symbols an expression names, directly (variables not followed)."""
    known = symbols()
    if isinstance(node, str):
        if node in known:
            yield node
        for inside in INTERPOLATION.findall(node):
            yield from (name for name in IDENTIFIER.findall(inside) if name in known)
    elif isinstance(node, dict):
        # An object literal's keys are names, not references; its values (and an expression's operands) are.
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def reach(node: Json) -> tuple[set[str], list[Json]]:
    """Every symbol the expression depends on through variables, and the expressions read on the way."""
    variables = template()["variables"]
    seen: set[str] = set()
    read = [node]
    pending = list(references(node))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in variables:
            read.append(variables[name]["value"])
            pending.extend(references(variables[name]["value"]))
    return seen, read


def secure_parameters() -> set[str]:
    return {
        name
        for name, p in template()["parameters"].items()
        if any(d.get("type") == "secure" for d in p.get("decorators", []))
    }


def settings_entries(node: Json) -> Iterator[tuple[str, Json]]:
    """(name, value) of every setting an app-settings expression can produce, whichever way its `?:` go."""
    variables = template()["variables"]
    if isinstance(node, str) and node in variables:
        yield from settings_entries(variables[node]["value"])
    elif is_expression(node):
        inner = next(iter(node.values()))
        for part in (inner.get("operands") or inner.get("parameters") or {}).values():
            yield from settings_entries(part)
    elif isinstance(node, dict):
        yield from node.items()
    elif isinstance(node, list):
        for item in node:
            yield from settings_entries(item)


def function_app() -> str:
    return the_one("Microsoft.Web/sites")


def app_settings_resource() -> dict[str, Json]:
    found = [
        body(r)
        for r in resources_of_type("Microsoft.Web/sites/config").values()
        if body(r)["name"] == "appsettings" and body(r).get("parent") == function_app()
    ]
    assert len(found) == 1, "one Microsoft.Web/sites/config 'appsettings' of the Function App"
    return found[0]


def app_settings() -> list[tuple[str, Json]]:
    return list(settings_entries(app_settings_resource()["properties"]))


def accessor_path(node: Json) -> list[str]:
    """`a.b.c` as ['a', 'b', 'c']; anything else as []."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "property_accessor":
        operands = node["operator"]["operands"]
        head, rest = accessor_path(operands["operand_1"]), accessor_path(operands["operand_2"])
        return head + rest if head and rest else []
    return []


def resolve(node: Json) -> Json:
    """A variable's value in place of its name."""
    variables = template()["variables"]
    while isinstance(node, str) and node in variables:
        node = variables[node]["value"]
    return node


# -- what the app reads ---------------------------------------------------------------------------------------


def environment_names(model: type[BaseModel], prefix: str) -> dict[str, str]:
    """Upper-cased environment name -> field name, as pydantic-settings matches them (case-insensitively)."""
    names: dict[str, str] = {}
    for field_name, field in model.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({str(choice).upper(): field_name for choice in alias.choices})
        elif isinstance(alias, str):
            names[alias.upper()] = field_name
        else:
            names[f"{prefix}{field_name}".upper()] = field_name
    return names


def annotation_members(annotation: object) -> tuple[object, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def field_for(setting: str) -> str | None:
    """The Settings field an app setting sets (`EVENTSTORE_X__Y` for a member of a dict or model), or None."""
    head, *members = setting.upper().split("__")
    field_name = environment_names(Settings, "EVENTSTORE_").get(head)
    if field_name is None or not members:
        return field_name
    for member in annotation_members(Settings.model_fields[field_name].annotation):
        if typing.get_origin(member) is dict:
            return field_name
        if isinstance(member, type) and issubclass(member, BaseModel):
            return field_name if members[0].lower() in member.model_fields else None
    return None


def secret_fields() -> set[str]:
    return {name for name, field in Settings.model_fields.items() if SecretStr in annotation_members(field.annotation)}


# -- the tests --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = BicepParser().parse(file_path=path)
    assert parsed["resources"] or parsed["parameters"] or parsed["outputs"], f"{path.name} declares nothing"


def test_the_app_settings_are_one_resource_written_after_the_vault_role() -> None:
    # The sites/config resource replaces every setting: settings also listed on the site would be dropped.
    assert "appSettings" not in body(template()["resources"][function_app()])["properties"].get("siteConfig", {})
    # The platform resolves references when the settings are written; before the role, they would not resolve.
    assert key_vault_reader() in app_settings_resource().get("dependsOn", [])
    assert app_settings(), "the template writes no app settings"


def test_every_eventstore_setting_is_a_field_of_settings() -> None:
    names = [name for name, _ in app_settings()]
    assert len(names) == len(set(names)), f"a setting is written twice: {sorted(names)}"
    unknown = [name for name in names if name.upper().startswith("EVENTSTORE_") and field_for(name) is None]
    assert not unknown, f"app settings that no field of eventstore.settings.Settings reads: {unknown}"


def test_secret_settings_are_key_vault_references() -> None:
    secrets = resources_of_type("Microsoft.KeyVault/vaults/secrets")
    vault = the_one("Microsoft.KeyVault/vaults")
    checked = 0
    for name, value in app_settings():
        if field_for(name) not in secret_fields():
            continue
        checked += 1
        match = KEY_VAULT_REFERENCE.match(value) if isinstance(value, str) else None
        assert match, f"{name} must be a Key Vault reference, not {value!r}"
        assert match.group(1) in secrets, f"{name} refers to {match.group(1)}, which is no Key Vault secret"
        assert body(secrets[match.group(1)])["parent"] == vault
    assert checked, "no secret setting found: the check would pass on anything"


def test_no_app_setting_carries_a_secure_parameter() -> None:
    # Through a variable too (the owner DSN holds the database password): a value reaches the app through a
    # Key Vault secret resource, whose URI is all the setting holds, or not at all.
    secure = secure_parameters()
    for name, value in app_settings():
        leaked = reach(value)[0] & secure
        assert not leaked, f"app setting {name} holds the secure parameter(s) {sorted(leaked)}"


def test_the_vault_uses_rbac_and_soft_delete() -> None:
    properties = body(template()["resources"][the_one("Microsoft.KeyVault/vaults")])["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True


def test_no_output_discloses_a_secret() -> None:
    secure = secure_parameters()
    secret_resources = set(resources_of_type("Microsoft.KeyVault/vaults/secrets"))
    for name, output in template()["outputs"].items():
        reached, read = reach(output["value"])
        assert not reached & secure, f"output {name} holds the secure parameter(s) {sorted(reached & secure)}"
        assert not reached & secret_resources, f"output {name} reads a Key Vault secret"
        text = json.dumps(read)
        assert not LIST_CALL.search(text) and '"func_name": "list' not in text, f"output {name} calls list*()"


def key_vault_reader() -> str:
    vault = the_one("Microsoft.KeyVault/vaults")
    readers = [
        name
        for name, r in resources_of_type("Microsoft.Authorization/roleAssignments").items()
        if body(r).get("scope") == vault
        and KEY_VAULT_SECRETS_USER in json.dumps(resolve_all(body(r)["properties"]["roleDefinitionId"]))
    ]
    assert len(readers) == 1, f"one 'Key Vault Secrets User' assignment on the vault, found {readers}"
    return readers[0]


def resolve_all(node: Json) -> Json:
    """The expression with every variable name replaced by its value, recursively."""
    node = resolve(node)
    if isinstance(node, dict):
        return {key: resolve_all(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_all(item) for item in node]
    return node


def test_the_vault_reader_is_the_function_apps_identity() -> None:
    assignment = body(template()["resources"][key_vault_reader()])
    assert accessor_path(assignment["properties"]["principalId"]) == [function_app(), "identity", "principalId"]
    assert body(template()["resources"][function_app()])["identity"]["type"] == "SystemAssigned"


# -- the operator console: Entra ID sign-in in front, or off ----------------------------------------------------


def outcomes(node: Json) -> list[Json]:
    """Every value an expression can take, whichever way its `?:` go (variables followed)."""
    node = resolve(node)
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "conditional":
        operands = node["operator"]["operands"]
        return outcomes(operands["true_value"]) + outcomes(operands["false_value"])
    return [node]


def negated(condition: Json) -> Json:
    """`!condition`, as pycep writes it."""
    return {"operator": {"type": "not", "operands": {"bool_value": condition}}}


def empty_of(parameter: str) -> Json:
    """`empty(parameter)`, as pycep writes it."""
    return {"function": {"type": "empty", "parameters": {"item_to_test": parameter}}}


def members(node: Json) -> dict[str, list[Json]]:
    """Each key an object expression (a literal, or a union of them) can hold, with every value it can take."""
    found: dict[str, list[Json]] = {}
    for key, value in settings_entries(node):
        found.setdefault(key, []).extend(outcomes(value))
    return found


def console_sign_in() -> tuple[str, dict[str, Json]]:
    found = {
        name: r
        for name, r in resources_of_type("Microsoft.Web/sites/config").items()
        if body(r)["name"].lower() in ("authsettingsv2", "authsettings")
    }
    assert len(found) == 1, f"one App Service Authentication config, found {sorted(found)}"
    ((name, resource),) = found.items()
    assert body(resource)["name"] == "authsettingsV2", "the V2 settings (the V1 ones have no Entra v2.0 issuer)"
    assert body(resource)["parent"] == function_app()
    return name, resource


def console_access_value() -> Json:
    values = [value for name, value in app_settings() if name.upper() == CONSOLE_ACCESS]
    assert len(values) == 1, f"{CONSOLE_ACCESS} must be written once, found {len(values)}"
    return values[0]


def when_entra(value: Json) -> Json:
    """The condition under which the setting says `entra`, for a `c ? 'entra' : 'off'` (or the reverse)."""
    node = resolve(value)
    assert isinstance(node, dict) and node.get("operator", {}).get("type") == "conditional", (
        f"{CONSOLE_ACCESS} must depend on whether sign-in is configured, not be fixed: {node!r}"
    )
    operands = node["operator"]["operands"]
    chosen = (outcomes(operands["true_value"]), outcomes(operands["false_value"]))
    if chosen == (["entra"], ["off"]):
        return operands["condition"]
    assert chosen == (["off"], ["entra"]), f"{CONSOLE_ACCESS} must be entra or off, not {chosen}"
    return negated(operands["condition"])


def test_console_sign_in_exists_only_when_a_client_id_is_given() -> None:
    name, resource = console_sign_in()
    assert resource["config"].get("condition") == negated(empty_of("consoleAuthClientId")), (
        f"{name} must be declared `if (!empty(consoleAuthClientId))`"
    )
    assert template()["parameters"]["consoleAuthClientId"].get("default") == "", "sign-in is off unless asked for"


def test_console_sign_in_is_entra_id_with_the_client_id() -> None:
    properties = body(console_sign_in()[1])["properties"]
    assert properties["platform"]["enabled"] is True
    entra = properties["identityProviders"]["azureActiveDirectory"]
    assert entra["enabled"] is True
    registration = members(entra["registration"])
    assert registration["clientId"] == ["consoleAuthClientId"]
    (issuer,) = registration["openIdIssuer"]
    assert "consoleAuthTenantId" in references(issuer) and issuer.endswith("/v2.0"), issuer
    assert set(properties["identityProviders"]) == {"azureActiveDirectory"}, "no other sign-in provider"


def test_console_sign_in_is_not_required_of_the_api() -> None:
    # The JSON API's machine callers present function keys, not Entra tokens: requiring sign-in for the whole app
    # (or turning the unauthenticated away) would lock them out. The console itself refuses an unsigned request.
    validation = body(console_sign_in()[1])["properties"]["globalValidation"]
    assert validation["requireAuthentication"] is False
    assert validation["unauthenticatedClientAction"] == "AllowAnonymous"


def test_the_console_is_never_open_in_azure() -> None:
    # Open trusts X-MS-CLIENT-PRINCIPAL-NAME from anyone; only App Service Authentication makes it trustworthy
    # (it strips the header from requests it did not sign in), so entra goes with the sign-in resource and
    # anything else is off.
    value = console_access_value()
    possible = outcomes(value)
    assert set(possible) <= {"entra", "off"}, f"{CONSOLE_ACCESS} can be {possible}: only entra or off in Azure"
    assert set(possible) <= set(typing.get_args(Settings.model_fields["console_access"].annotation))
    name, resource = console_sign_in()
    assert when_entra(value) == resource["config"].get("condition"), (
        f"{CONSOLE_ACCESS} must be entra exactly when {name} is deployed"
    )


def test_the_console_client_secret_reaches_sign_in_as_a_key_vault_reference() -> None:
    assert "consoleAuthClientSecret" in secure_parameters()
    entra = body(console_sign_in()[1])["properties"]["identityProviders"]["azureActiveDirectory"]
    names = set(members(entra["registration"]).get("clientSecretSettingName", []))
    assert len(names) == 1, f"one setting holds the client secret, found {names}"
    (setting,) = names
    values = [value for name, value in app_settings() if name == setting]
    assert len(values) == 1, f"the app settings must write {setting}, which the sign-in reads the secret from"
    match = KEY_VAULT_REFERENCE.match(values[0]) if isinstance(values[0], str) else None
    assert match, f"{setting} must be a Key Vault reference, not {values[0]!r}"
    assert body(template()["resources"][match.group(1)])["properties"]["value"] == "consoleAuthClientSecret"


# -- infra/deploy.sh, against a stand-in az ---------------------------------------------------------------------

# Records each call's arguments, with the content of any @file parameter (deploy.sh removes it on exit), and
# answers the deployment with the outputs deploy.sh reads.
FAKE_AZ = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
files = {a: open(a[1:]).read() for a in args if a.startswith("@")}
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "files": files}) + "\\n")
if args[:3] == ["deployment", "group", "create"]:
    names = ["functionAppName", "postgresHost", "keyVaultName", "consoleSignInRedirectUri", "functionAppPrincipalId",
             "postgresAdminLogin", "databaseName"]
    outputs = {name: {"value": name + "-value"} for name in names}
    outputs["databaseLogin"] = {"value": os.environ.get("FAKE_AZ_DATABASE_LOGIN", "owner")}
    print(json.dumps(outputs))
if args[:2] == ["account", "get-access-token"]:
    print("entra-token-value")
if args[:3] == ["ad", "signed-in-user", "show"] and os.environ.get("FAKE_AZ_USER"):
    print(json.dumps({"id": "user-object-id", "name": os.environ["FAKE_AZ_USER"]}))
"""

# Records each call's arguments and the owner DSN it was handed in its environment (migrate.sh's stand-in CLI).
FAKE_CLI = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_CLI_LOG"], "a") as log:
    log.write(json.dumps({"args": sys.argv[1:], "dsn": os.environ.get("EVENTSTORE_DATABASE_URL"),
                          "app_dsn": os.environ.get("EVENTSTORE_APP_DATABASE_URL"),
                          "password": os.environ.get("PGPASSWORD")}) + "\\n")
"""


class DeployRun(typing.NamedTuple):
    az: list[dict[str, Any]]
    cli: list[dict[str, Any]]
    stdout: str


def deploy(tmp_path: Path, environment: dict[str, str], *extra: str) -> DeployRun:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(FAKE_AZ)
    (bin_dir / "az").chmod(0o755)
    (bin_dir / "eventstore-cli").write_text(FAKE_CLI)
    (bin_dir / "eventstore-cli").chmod(0o755)
    log, cli_log = tmp_path / "az.log", tmp_path / "cli.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "FAKE_AZ_LOG": str(log),
        "FAKE_CLI_LOG": str(cli_log),
        "EVENTSTORE_CLI": str(bin_dir / "eventstore-cli"),
        "POSTGRES_PASSWORD": "postgres-password-value",
        **environment,
    }
    result = subprocess.run(
        ["bash", str(INFRA / "deploy.sh"), "group", "name", "westeurope", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cli = [json.loads(line) for line in cli_log.read_text().splitlines()] if cli_log.exists() else []
    return DeployRun([json.loads(line) for line in log.read_text().splitlines()], cli, result.stdout)


def run_deploy(tmp_path: Path, environment: dict[str, str], *extra: str) -> list[dict[str, Any]]:
    return deploy(tmp_path, environment, *extra).az


def deployment_call(calls: list[dict[str, Any]]) -> dict[str, Any]:
    (call,) = [c for c in calls if c["args"][:3] == ["deployment", "group", "create"]]
    return call


def test_deploy_passes_the_console_client_id_and_keeps_its_secret_off_the_command_line(tmp_path: Path) -> None:
    calls = run_deploy(
        tmp_path,
        {"CONSOLE_AUTH_CLIENT_ID": "client-id-value", "CONSOLE_AUTH_CLIENT_SECRET": "client-secret-value"},
    )
    call = deployment_call(calls)
    assert "consoleAuthClientId=client-id-value" in call["args"]
    assert not any("client-secret-value" in arg or "postgres-password-value" in arg for c in calls for arg in c["args"])
    (parameters,) = (json.loads(text)["parameters"] for text in call["files"].values())
    assert parameters["consoleAuthClientSecret"] == {"value": "client-secret-value"}
    assert parameters["postgresAdminPassword"] == {"value": "postgres-password-value"}
    assert "consoleAuthClientId" not in parameters


def test_deploy_without_a_console_client_id_leaves_sign_in_out(tmp_path: Path) -> None:
    call = deployment_call(run_deploy(tmp_path, {}))
    assert not any(arg.startswith("consoleAuth") for arg in call["args"]), call["args"]
    (parameters,) = (json.loads(text)["parameters"] for text in call["files"].values())
    assert not any(name.startswith("consoleAuth") for name in parameters)


def test_deploy_runs_migrations_and_onboarding_with_the_owner_dsn_in_the_environment_only(tmp_path: Path) -> None:
    environment = {
        "MIGRATE": "1",
        "ONBOARD_TENANTS": "tenant-a, tenant-b",
        "POSTGRES_PASSWORD": "p@ss/wd",
        # The deployer's shell may hold an app DSN of its own: migrations must not run with it.
        "EVENTSTORE_APP_DATABASE_URL": "postgresql://someone@elsewhere/db",
    }
    run = deploy(tmp_path, environment)
    assert [c["args"] for c in run.cli] == [
        ["migrate"],
        ["tenant", "onboard", "tenant-a"],
        ["tenant", "onboard", "tenant-b"],
        ["partitions"],
    ]
    expected = (
        "postgresql://postgresAdminLogin-value:p%40ss%2Fwd@postgresHost-value:5432/databaseName-value?sslmode=require"
    )
    assert {c["dsn"] for c in run.cli} == {expected}
    assert all(c["app_dsn"] is None for c in run.cli), "the owner's migrations must not pick up an app DSN"
    assert not any("p@ss/wd" in arg for c in [*run.az, *run.cli] for arg in c["args"])
    # Before the code goes up: the code may expect the schema it migrates to.
    upload = next(i for i, c in enumerate(run.az) if c["args"][:2] == ["functionapp", "deployment"])
    assert upload == len(run.az) - 1


def test_deploy_leaves_migrations_to_the_app_unless_asked_while_it_logs_in_as_the_owner(tmp_path: Path) -> None:
    assert deploy(tmp_path, {}).cli == []


TOKEN = "entra-token-value"  # noqa: S105 - what the stand-in az answers get-access-token with


def test_deploy_with_an_entra_login_makes_and_grants_the_identitys_login_before_the_code(tmp_path: Path) -> None:
    run = deploy(tmp_path, {"FAKE_AZ_DATABASE_LOGIN": "entra", "FAKE_AZ_USER": "ops@example.com"})
    assert [c["args"] for c in run.cli] == [
        ["migrate"],
        ["entra-principal", "functionAppName-value", "functionAppPrincipalId-value"],
        ["grant-login", "functionAppName-value"],
        ["partitions"],
    ]
    principal, grant = run.cli[1], run.cli[2]
    # The principal is made by the Entra administrator with the deployer's token, in the postgres database...
    assert principal["dsn"] == "postgresql://ops%40example.com@postgresHost-value:5432/postgres?sslmode=require"
    assert principal["password"] == TOKEN
    # ...the grant by the owner; the token is on no command line.
    assert grant["dsn"].startswith("postgresql://postgresAdminLogin-value:") and grant["password"] is None
    assert not any(TOKEN in arg for c in [*run.az, *run.cli] for arg in c["args"])
    assert "pgaadauth_create_principal_with_oid" not in run.stdout, "nothing is left to do by hand"
    upload = next(i for i, c in enumerate(run.az) if c["args"][:2] == ["functionapp", "deployment"])
    assert upload == len(run.az) - 1


def test_deploy_without_an_entra_administrator_grants_and_prints_the_principal_sql(tmp_path: Path) -> None:
    run = deploy(tmp_path, {"FAKE_AZ_DATABASE_LOGIN": "entra"})
    assert [c["args"][0] for c in run.cli] == ["migrate", "grant-login", "partitions"]
    assert (
        "pgaadauth_create_principal_with_oid('functionAppName-value', 'functionAppPrincipalId-value', 'service', "
        "false, false)" in run.stdout
    )
    assert "eventstore grant-login 'functionAppName-value'" in run.stdout


def test_deploy_makes_the_signed_in_user_postgres_entra_administrator(tmp_path: Path) -> None:
    call = deployment_call(run_deploy(tmp_path, {"FAKE_AZ_USER": "ops@example.com", "DEPLOYER_IP": "203.0.113.7"}))
    assert "postgresEntraAdminObjectId=user-object-id" in call["args"]
    assert "postgresEntraAdminName=ops@example.com" in call["args"]
    assert "postgresEntraAdminType=User" in call["args"]
    assert "deployerIpAddress=203.0.113.7" in call["args"]


def test_deploy_without_a_signed_in_user_names_no_entra_administrator(tmp_path: Path) -> None:
    call = deployment_call(run_deploy(tmp_path, {}))
    assert not any(arg.startswith("postgresEntraAdmin") for arg in call["args"]), call["args"]


# -- every Bicep file: modules, outputs, role assignments ----------------------------------------------------


@cache
def parsed(path: Path) -> dict[str, Json]:
    return dict(BicepParser().parse(file_path=path))


def module_calls() -> dict[str, dict[str, Json]]:
    return dict(template().get("modules") or {})


def module_file(call: Json) -> Path:
    return INFRA / str(call["detail"]["path"])


def module_calls_of(relative: str) -> dict[str, Json]:
    found = {name: call for name, call in module_calls().items() if call["detail"]["path"] == relative}
    assert len(found) == 1, f"main.bicep must use {relative} once, found {sorted(found)}"
    return found


def test_every_module_exists_and_gets_the_parameters_it_declares() -> None:
    assert module_calls(), "main.bicep uses no module: the checks below would pass on anything"
    for name, call in module_calls().items():
        assert module_file(call).is_file(), f"module {name}: {module_file(call)} is missing"
        declared = parsed(module_file(call))["parameters"]
        given = set(body(call)["params"])
        assert given <= set(declared), f"module {name} is given parameters it does not declare: {given - set(declared)}"
        required = {p for p, spec in declared.items() if spec.get("default") is None}  # pycep: null when none
        assert required <= given, f"module {name} lacks required parameters {sorted(required - given)}"


def test_no_module_output_discloses_a_secret() -> None:
    for call in module_calls().values():
        module = parsed(module_file(call))
        secure = {n for n, p in module["parameters"].items() if any(d.get("type") == "secure" for d in p["decorators"])}
        for name, output in module["outputs"].items():
            text = json.dumps(output["value"])
            assert not LIST_CALL.search(text) and '"func_name": "list' not in text, f"{name} calls list*()"
            assert not any(s in text for s in secure), f"output {name} of {module_file(call).name} holds a secret"


def test_every_role_assignment_names_the_function_apps_identity() -> None:
    assignments = resources_of_type("Microsoft.Authorization/roleAssignments")
    assert len(assignments) >= 4, sorted(assignments)
    for name, assignment in assignments.items():
        principal = accessor_path(body(assignment)["properties"]["principalId"])
        assert principal == [function_app(), "identity", "principalId"], f"{name} names {principal}"
        assert body(assignment)["properties"]["principalType"] == "ServicePrincipal"
    for call in module_calls().values():
        kinds = {r["type"] for r in parsed(module_file(call))["resources"].values()}
        assert "Microsoft.Authorization/roleAssignments" not in kinds, f"{module_file(call).name} assigns a role"


# -- Flex Consumption, identity-based storage -----------------------------------------------------------------

STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
# App settings a Flex Consumption app refuses or ignores: its runtime and content are functionAppConfig.
FLEX_REFUSED_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_RUN_FROM_PACKAGE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_VNET_ROUTE_ALL",
}


def site() -> dict[str, Json]:
    return body(template()["resources"][function_app()])


def test_the_plan_is_flex_consumption() -> None:
    plans = resources_of_type("Microsoft.Web/serverfarms")
    assert len(plans) == 1
    (plan,) = plans.values()
    assert body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert accessor_path(site()["properties"]["serverFarmId"]) == [next(iter(plans)), "id"]


def test_the_site_runs_python_from_its_deployment_container_with_its_own_identity() -> None:
    properties = site()["properties"]
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert {"maximumInstanceCount", "instanceMemoryMB"} <= set(config["scaleAndConcurrency"])
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert site()["identity"]["type"] == "SystemAssigned"
    assert storage["authentication"] == {"type": "SystemAssignedIdentity"}, "the identity the roles are given to"
    account, container = INTERPOLATION.findall(storage["value"])
    storage_account = the_one("Microsoft.Storage/storageAccounts")
    assert account == f"{storage_account}.properties.primaryEndpoints.blob"
    containers = resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers")
    assert [resolve(body(c)["name"]) for c in containers.values()] == [resolve(container)]
    assert "linuxFxVersion" not in properties.get("siteConfig", {}), "Flex Consumption takes the runtime above"


def test_no_app_setting_is_one_flex_consumption_refuses() -> None:
    refused = {name for name, _ in app_settings()} & FLEX_REFUSED_SETTINGS
    assert not refused, f"not supported on Flex Consumption: {sorted(refused)}"


def test_host_storage_is_identity_based() -> None:
    settings = dict(app_settings())
    storage_account = the_one("Microsoft.Storage/storageAccounts")
    assert accessor_path(settings["AzureWebJobsStorage__accountName"]) == [storage_account, "name"]
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage" not in settings, "a connection string would carry the account key"


def test_no_app_setting_holds_an_account_key() -> None:
    for name, value in app_settings():
        text = json.dumps(reach(value)[1])
        assert "AccountKey" not in text, f"app setting {name} holds an account key"
        assert not LIST_CALL.search(text) and '"func_name": "list' not in text, f"app setting {name} calls list*()"


def test_the_apps_storage_clients_use_account_urls_and_shared_keys_are_off() -> None:
    settings = dict(app_settings())
    storage_account = the_one("Microsoft.Storage/storageAccounts")
    assert accessor_path(settings["EVENTSTORE_BLOB_ACCOUNT_URL"]) == [
        storage_account,
        "properties",
        "primaryEndpoints",
        "blob",
    ]
    assert accessor_path(settings["EVENTSTORE_QUEUE_ACCOUNT_URL"]) == [
        storage_account,
        "properties",
        "primaryEndpoints",
        "queue",
    ]
    written = {field_for(name) for name in settings}
    assert not written & {"blob_connection_string", "queue_connection_string"}, "a connection string holds a key"
    assert body(template()["resources"][storage_account])["properties"]["allowSharedKeyAccess"] is False


def test_the_apps_identity_has_the_storage_data_roles() -> None:
    storage_account = the_one("Microsoft.Storage/storageAccounts")
    roles = {
        role
        for r in resources_of_type("Microsoft.Authorization/roleAssignments").values()
        if body(r).get("scope") == storage_account
        for role in (STORAGE_BLOB_DATA_OWNER, STORAGE_QUEUE_DATA_CONTRIBUTOR, STORAGE_TABLE_DATA_CONTRIBUTOR)
        if role in json.dumps(resolve_all(body(r)["properties"]["roleDefinitionId"]))
    }
    assert roles == {STORAGE_BLOB_DATA_OWNER, STORAGE_QUEUE_DATA_CONTRIBUTOR, STORAGE_TABLE_DATA_CONTRIBUTOR}
    storage_roles = [
        name
        for name, r in resources_of_type("Microsoft.Authorization/roleAssignments").items()
        if body(r).get("scope") == storage_account
    ]
    # The host starts on the settings: the roles it needs are in place first.
    assert set(storage_roles) <= set(app_settings_resource()["dependsOn"])


# -- PostgreSQL: Entra authentication, the app's login ----------------------------------------------------------


def postgres_server() -> str:
    return the_one("Microsoft.DBforPostgreSQL/flexibleServers")


def owner_dsn_secrets() -> list[str]:
    return [
        name
        for name, r in resources_of_type("Microsoft.KeyVault/vaults/secrets").items()
        if "postgresAdminPassword" in reach(body(r)["properties"]["value"])[0]
    ]


def test_postgres_takes_entra_logins_and_the_owners_password() -> None:
    auth = body(template()["resources"][postgres_server()])["properties"]["authConfig"]
    assert auth["activeDirectoryAuth"] == "Enabled"
    assert auth["passwordAuth"] == "Enabled", "the owner login (migrations, onboarding) has a password"
    (admin,) = resources_of_type("Microsoft.DBforPostgreSQL/flexibleServers/administrators").values()
    assert body(admin)["parent"] == postgres_server()
    assert body(admin)["name"] == "postgresEntraAdminObjectId"
    assert template()["parameters"]["postgresEntraAdminObjectId"]["default"] == "", "no administrator unless named"


def test_the_owner_dsn_is_in_the_vault_only_while_the_app_logs_in_as_the_owner() -> None:
    # The app's identity reads every secret of the vault: with an Entra login, the owner's password must be absent.
    (secret,) = owner_dsn_secrets()
    owner_only = {"operator": {"type": "equals", "operands": {"operand_1": "databaseLogin", "operand_2": "owner"}}}
    assert template()["resources"][secret]["config"].get("condition") == owner_only


def test_the_app_gets_the_owner_dsn_or_its_own_login_never_both() -> None:
    sources = [
        name
        for name, value in template()["variables"].items()
        if any(key in {"EVENTSTORE_DATABASE_URL", "EVENTSTORE_APP_DATABASE_URL"} for key, _ in settings_entries(name))
    ]
    assert len(sources) == 1, f"one variable decides the database settings, found {sources}"
    node = resolve(sources[0])
    operands = node["operator"]["operands"]
    assert operands["condition"] == {
        "operator": {"type": "equals", "operands": {"operand_1": "databaseLogin", "operand_2": "entra"}}
    }
    entra, owner = resolve(operands["true_value"]), resolve(operands["false_value"])
    assert set(entra) == {"EVENTSTORE_DATABASE_AUTH", "EVENTSTORE_APP_DATABASE_URL", "EVENTSTORE_DIRECT_DATABASE_URL"}
    assert set(owner) == {"EVENTSTORE_DATABASE_URL"}
    assert entra["EVENTSTORE_DATABASE_AUTH"] == "entra", "the identity's token is the password"
    for url in ("EVENTSTORE_APP_DATABASE_URL", "EVENTSTORE_DIRECT_DATABASE_URL"):
        reached = reach(entra[url])[0]
        assert not reached & (secure_parameters() | set(resources_of_type("Microsoft.KeyVault/vaults/secrets")))
    assert function_app() in reach(entra["EVENTSTORE_APP_DATABASE_URL"])[0], "the app's login is its identity"
    (secret,) = owner_dsn_secrets()
    assert KEY_VAULT_REFERENCE.match(owner["EVENTSTORE_DATABASE_URL"]).group(1) == secret  # type: ignore[union-attr]
    assert template()["parameters"]["databaseLogin"]["default"] == "entra", "no owner rights in the running app"
    assert {f for f in Settings.model_fields if f in {"database_auth", "direct_database_url"}} == {
        "database_auth",
        "direct_database_url",
    }


def test_pgbouncer_is_transaction_pooling_and_only_with_the_apps_own_login() -> None:
    configurations = {
        body(r)["name"]: (r, body(r))
        for r in resources_of_type("Microsoft.DBforPostgreSQL/flexibleServers/configurations").values()
    }
    assert set(configurations) == {"pgbouncer.enabled", "pgbouncer.pool_mode"}
    assert configurations["pgbouncer.pool_mode"][1]["properties"]["value"] == "transaction"
    for resource, _ in configurations.values():
        assert resource["config"].get("condition") == "usePgBouncer"
    # An owner login through the pooler would switch role on one server connection only: entra logins only.
    assert template()["variables"]["usePgBouncer"]["value"] == {
        "operator": {
            "type": "and",
            "operands": {
                "operand_1": {
                    "operator": {
                        "type": "equals",
                        "operands": {"operand_1": "databasePooling", "operand_2": "pgbouncer"},
                    }
                },
                "operand_2": {
                    "operator": {"type": "equals", "operands": {"operand_1": "databaseLogin", "operand_2": "entra"}}
                },
            },
        }
    }


# -- private networking ---------------------------------------------------------------------------------------

PRIVATE = "privateNetworking"
SERVICES_BEHIND_ENDPOINTS = {
    ("storageAccountId", "blob"),
    ("storageAccountId", "queue"),
    ("storageAccountId", "table"),
    ("keyVaultId", "vault"),
    ("postgresServerId", "postgresqlServer"),
    ("feedTopicId", "topic"),
}


def test_private_endpoints_come_only_with_private_networking() -> None:
    for name, r in template()["resources"].items():
        if r["type"].startswith("Microsoft.Network/"):
            assert r["config"].get("condition") == PRIVATE, f"{name} must be declared `if ({PRIVATE})`"
    networked = [
        name
        for name, call in module_calls().items()
        if any(r["type"].startswith("Microsoft.Network/") for r in parsed(module_file(call))["resources"].values())
    ]
    assert networked, "no module declares the private endpoints"
    for name in networked:
        assert module_calls()[name]["config"].get("condition") == PRIVATE, f"module {name} needs `if ({PRIVATE})`"
    assert template()["parameters"][PRIVATE]["default"] is False


def test_every_service_the_app_reaches_has_a_private_endpoint() -> None:
    ((name, call),) = module_calls_of("modules/network.bicep").items()
    network = parsed(module_file(call))
    (endpoints,) = (r for r in network["resources"].values() if r["type"] == "Microsoft.Network/privateEndpoints")
    loop = endpoints["config"]["loop_type"]["detail"]
    connection = body(endpoints)["properties"]["privateLinkServiceConnections"][0]["properties"]
    item = loop["item_name"]
    assert accessor_path(connection["privateLinkServiceId"]) == [item, "target"]
    assert [accessor_path(g) for g in connection["groupIds"]] == [[item, "group"]]
    entries = network["variables"][loop["array_name"]]["value"]
    assert {(e["target"], e["group"]) for e in entries} == SERVICES_BEHIND_ENDPOINTS
    # Each parameter is the id of the resource main.bicep means.
    given = {p: accessor_path(v) for p, v in body(call)["params"].items()}
    storage_account = the_one("Microsoft.Storage/storageAccounts")
    assert given["storageAccountId"] == [storage_account, "id"]
    assert given["keyVaultId"] == [the_one("Microsoft.KeyVault/vaults"), "id"]
    assert given["postgresServerId"] == [postgres_server(), "id"]
    assert given["feedTopicId"] == [the_one("Microsoft.EventGrid/topics"), "id"]
    # The app joins the VNet the endpoints are in.
    subnet = site()["properties"]["virtualNetworkSubnetId"]["operator"]["operands"]
    assert subnet["condition"] == PRIVATE and accessor_path(subnet["true_value"]) == [name, "outputs", "appSubnetId"]


def test_public_access_is_off_with_private_networking() -> None:
    off = {
        "operator": {
            "type": "conditional",
            "operands": {"condition": PRIVATE, "true_value": "Disabled", "false_value": "Enabled"},
        }
    }
    for kind in ("Microsoft.Storage/storageAccounts", "Microsoft.KeyVault/vaults", "Microsoft.EventGrid/topics"):
        properties = body(template()["resources"][the_one(kind)])["properties"]
        assert properties["publicNetworkAccess"] == off, kind
    postgres = body(template()["resources"][postgres_server()])["properties"]
    assert postgres["network"]["publicNetworkAccess"] == off


def test_the_allow_azure_rule_exists_only_without_private_networking() -> None:
    rules = resources_of_type("Microsoft.DBforPostgreSQL/flexibleServers/firewallRules")
    assert rules
    for name, rule in rules.items():
        condition = json.dumps(rule["config"].get("condition"))
        assert f'"{PRIVATE}"' in condition and '"type": "not"' in condition, f"{name} must be off with {PRIVATE}"
        if body(rule)["properties"]["startIpAddress"] == "0.0.0.0":  # noqa: S104 (Azure's "any Azure service" rule)
            assert rule["config"]["condition"] == negated(PRIVATE), f"{name}: only `if (!{PRIVATE})`"


# -- Azure Monitor alert rules ----------------------------------------------------------------------------------


def telemetry_row(metric: str) -> str:
    (row,) = [
        line
        for line in (PROJECT_ROOT / "docs" / "telemetry.md").read_text().splitlines()
        if line.startswith(f"| `{metric}` |")
    ]
    return row


def test_alert_rules_watch_function_errors_feed_lag_and_view_lag() -> None:
    ((_, call),) = module_calls_of("modules/monitoring.bicep").items()
    assert call["config"].get("condition") == "appInsightsEnabled"
    params = body(call)["params"]
    assert accessor_path(params["insightsId"]) == [the_one("Microsoft.Insights/components"), "id"]
    assert params["alertEmail"] == "monitorAlertEmail"
    monitoring = parsed(module_file(call))
    rules = [body(r) for r in monitoring["resources"].values() if r["type"] == "Microsoft.Insights/scheduledQueryRules"]
    queries = {}
    for rule in rules:
        assert rule["properties"]["scopes"] == ["insightsId"]
        assert rule["properties"]["actions"] == "actions"
        (criterion,) = rule["properties"]["criteria"]["allOf"]
        query = monitoring["variables"][criterion["query"]]["value"]
        assert criterion["metricMeasureColumn"] in query
        queries[query] = criterion
    assert any(q.startswith("requests ") and "success == false" in q for q in queries), "no function-errors rule"
    for metric in (FEED_PUBLISH_DURATION, VIEW_CATCH_UP_DURATION):
        (query,) = [q for q in queries if f'name == "{metric}"' in q]
        # The outcomes a lag rule counts are ones the app records for that metric (docs/telemetry.md).
        counted = re.findall(r'"(\w+)"', query.split("outcome in", 1)[1].split(")", 1)[0])
        assert counted and all(f"`{o}`" in telemetry_row(metric) for o in counted), (metric, counted)
        assert "caught_up" not in counted


def test_alerts_email_the_action_group_only_when_an_address_is_given() -> None:
    ((_, call),) = module_calls_of("modules/monitoring.bicep").items()
    monitoring = parsed(module_file(call))
    ((group_name, group),) = [
        (n, r) for n, r in monitoring["resources"].items() if r["type"] == "Microsoft.Insights/actionGroups"
    ]
    assert group["config"].get("condition") == negated(empty_of("alertEmail"))
    (receiver,) = body(group)["properties"]["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail"
    actions = monitoring["variables"]["actions"]["value"]["operator"]["operands"]
    assert actions["condition"] == empty_of("alertEmail") and actions["true_value"] == {"actionGroups": []}
    assert [accessor_path(g) for g in actions["false_value"]["actionGroups"]] == [[group_name, "id"]]


# -- azd --------------------------------------------------------------------------------------------------------


def test_azure_yaml_provisions_main_bicep_and_deploys_the_function_app() -> None:
    document = yaml.safe_load((PROJECT_ROOT / "azure.yaml").read_text())
    infra = document["infra"]
    assert infra["provider"] == "bicep"
    assert (PROJECT_ROOT / infra["path"] / f"{infra.get('module', 'main')}.bicep").resolve() == MAIN.resolve()
    api = document["services"]["api"]
    assert (api["language"], api["host"]) == ("python", "function")
    project = (PROJECT_ROOT / api["project"]).resolve()
    assert (project / "function_app.py").is_file() and (project / "host.json").is_file()
    # azd finds the app it deploys to by this tag.
    assert site()["tags"] == {"'azd-service-name'": "api"}
    for name, hook in document.get("hooks", {}).items():
        script = PROJECT_ROOT / hook["run"]
        assert script.is_file() and os.access(script, os.X_OK), f"hook {name}: {script} is not an executable file"


def test_azd_parameters_are_parameters_of_main_bicep() -> None:
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = template()["parameters"]
    assert set(given) <= set(declared), f"not parameters of main.bicep: {set(given) - set(declared)}"
    required = {name for name, spec in declared.items() if spec.get("default") is None}  # pycep: null when none
    assert required <= set(given), f"azd would not pass {sorted(required - set(given))}"


def test_migrate_sh_migrates_and_onboards_with_the_real_cli(database_url: str, tmp_path: Path) -> None:
    # The owner DSN migrate.sh builds is one libpq accepts, and the commands it runs are the CLI's own.
    parts = psycopg.conninfo.conninfo_to_dict(database_url)
    tenants = [str(uuid.uuid4()), str(uuid.uuid4())]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "POSTGRES_HOST": str(parts.get("host") or "localhost"),
        "POSTGRES_PORT": str(parts.get("port") or "5432"),
        "POSTGRES_ADMIN_LOGIN": str(parts.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(parts.get("password") or "unused-with-trust"),
        "POSTGRES_DATABASE": str(parts["dbname"]),
        "ONBOARD_TENANTS": ",".join(tenants),
        "EVENTSTORE_CLI": str(Path(sys.executable).parent / "eventstore"),
    }
    result = subprocess.run(
        ["bash", str(INFRA / "migrate.sh")], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(
        [env["EVENTSTORE_CLI"], "tenant", "list"],
        env={**env, "EVENTSTORE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert all(tenant in listed.stdout for tenant in tenants), listed.stdout

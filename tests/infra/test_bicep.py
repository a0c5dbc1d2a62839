"""infra/*.bicep read offline (pycep-parser; no `az bicep` here): the app settings the template writes are
settings the app reads, its secrets reach the app only as Key Vault references, no output discloses one,
the app's identity is the one allowed to read the vault, and the operator console is behind Entra ID sign-in
or off, never open. infra/deploy.sh runs against a stand-in `az` that records what it is given.

pycep gives an expression as JSON: an object literal is a dict, an operator or function call a dict with the
single key `operator` or `function`, and a symbol (parameter, variable, resource) the bare string of its
name, which a literal string looks the same as: a string equal to a declared symbol is taken as that symbol.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import types
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser
from pydantic import AliasChoices, BaseModel, SecretStr

from eventstore.settings import Settings
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
    return set(t["parameters"]) | set(t["variables"]) | set(t["resources"])


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
    names = ["functionAppName", "postgresHost", "keyVaultName", "consoleSignInRedirectUri"]
    print(json.dumps({name: {"value": name + "-value"} for name in names}))
"""


def run_deploy(tmp_path: Path, environment: dict[str, str], *extra: str) -> list[dict[str, Any]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(FAKE_AZ)
    (bin_dir / "az").chmod(0o755)
    log = tmp_path / "az.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "FAKE_AZ_LOG": str(log),
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
    return [json.loads(line) for line in log.read_text().splitlines()]


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

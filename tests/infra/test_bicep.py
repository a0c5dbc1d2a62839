"""infra/*.bicep read offline (pycep-parser; no `az bicep` here): the app settings the template writes are
settings the app reads, its secrets reach the app only as Key Vault references, no output discloses one,
and the app's identity is the one allowed to read the vault.

pycep gives an expression as JSON: an object literal is a dict, an operator or function call a dict with the
single key `operator` or `function`, and a symbol (parameter, variable, resource) the bare string of its
name, which a literal string looks the same as: a string equal to a declared symbol is taken as that symbol.
"""

from __future__ import annotations

import json
import re
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

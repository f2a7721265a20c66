"""Reads template.yaml, so the local stand-ins (the moto table, the HTTP API) cannot drift from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from local.apigw import CorsConfiguration, Route

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads `!Ref`, `!Sub`, … as plain values; we only need the literal parts."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)  # noqa: S506
    return document


def customers_table_definition(table_name: str) -> dict[str, Any]:
    """`create_table` arguments taken from the CustomersTable resource."""
    properties = load_template()["Resources"]["CustomersTable"]["Properties"]
    return {
        "TableName": table_name,
        "BillingMode": properties["BillingMode"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "GlobalSecondaryIndexes": properties.get("GlobalSecondaryIndexes", []),
    }


def function_variables(function: str) -> dict[str, Any]:
    """The environment variables a function declares, the Globals' included (as `sam local` reads them)."""
    template = load_template()
    globals_ = template.get("Globals", {}).get("Function", {})
    declared: dict[str, Any] = {}
    for scope in (globals_, template["Resources"][function]["Properties"]):
        declared.update(scope.get("Environment", {}).get("Variables", {}))
    return declared


def http_api_routes(api: str = "PortalApi") -> tuple[Route, ...]:
    """Every HttpApi event that names this API, as the routes API Gateway matches."""
    return tuple(
        Route(event["Properties"]["Method"].upper(), event["Properties"]["Path"], name)
        for name, resource in load_template()["Resources"].items()
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event["Type"] == "HttpApi" and event["Properties"].get("ApiId") == {"Ref": api}
    )


def http_api_cors(environment: dict[str, str], api: str = "PortalApi") -> CorsConfiguration | None:
    """The API's CorsConfiguration, its parameters resolved as the function's environment holds them."""
    template = load_template()
    cors = template["Resources"][api]["Properties"].get("CorsConfiguration")
    if cors is None:
        return None
    parameters = _parameters(template, environment)

    def strings(key: str) -> tuple[str, ...]:
        return tuple(str(item) for item in _resolved(cors.get(key, []), parameters))

    max_age = cors.get("MaxAge")
    return CorsConfiguration(
        allow_origins=strings("AllowOrigins"),
        allow_methods=strings("AllowMethods"),
        allow_headers=strings("AllowHeaders"),
        expose_headers=strings("ExposeHeaders"),
        allow_credentials=bool(cors.get("AllowCredentials", False)),
        max_age=None if max_age is None else int(max_age),
    )


def _parameters(template: dict[str, Any], environment: dict[str, str]) -> dict[str, str]:
    """Each parameter's value: from a function variable set by `!Ref` to it, else its Default."""
    declared = template["Parameters"]
    values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
    for resource in template["Resources"].values():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for variable, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") in declared and variable in environment:
                values[value["Ref"]] = environment[variable]
    return values


def _resolved(value: Any, parameters: dict[str, str]) -> Any:
    """`!Ref` to a parameter and `!Split`, the intrinsics a CorsConfiguration uses here."""
    if isinstance(value, dict) and "Ref" in value:
        return parameters[value["Ref"]]
    if isinstance(value, dict) and "Split" in value:
        separator, source = value["Split"]
        return str(_resolved(source, parameters)).split(separator)
    return value

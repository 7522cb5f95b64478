"""The OpenAPI document at /api/openapi.json: it lists exactly the routes, and the live app keeps its promises."""

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from importdash.config import Config
from importdash.openapi import document

# Server-Sent Event streams stay open until their job ends, so the fuzzer leaves them out.
STREAMS = r"/events$"


def documented_routes(document):
    return {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}


def app_routes(app):
    """Every (method, OpenAPI path) the app serves under /api/, plus /health and /metrics."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule in ("/health", "/metrics")):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_every_api_route_is_documented_and_every_documented_route_exists(app, client):
    documented = documented_routes(client.get("/api/openapi.json").get_json())
    served = app_routes(app)

    assert served - documented == set(), "routes missing from the OpenAPI document"
    assert documented - served == set(), "documented routes the app does not serve"


def test_the_document_is_openapi_3_1_with_the_configured_page_size(app, client):
    document = client.get("/api/openapi.json").get_json()

    assert document["openapi"] == "3.1.0"
    limit = next(p for p in document["paths"]["/api/import"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["anyOf"][0]["maximum"] == app.config["MAX_PAGE_SIZE"]
    assert "security" not in document


@pytest.mark.parametrize("app_config", [dict(AUTH_USERNAME="ada", AUTH_PASSWORD="s3cret")])
def test_with_auth_on_the_document_asks_for_basic_auth_everywhere_but_health(client):
    document = client.get("/api/openapi.json", headers={"Authorization": "Basic YWRhOnMzY3JldA=="}).get_json()

    assert document["security"] == [{"basic": []}]
    assert document["components"]["securitySchemes"]["basic"] == {"type": "http", "scheme": "basic"}
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "401" in document["paths"]["/api/records"]["delete"]["responses"]
    assert "401" not in document["paths"]["/health"]["get"]["responses"]
    assert "401" in document["paths"]["/metrics"]["get"]["responses"]


@pytest.mark.parametrize("app_config", [dict(AUTH_USERNAME="ada", AUTH_PASSWORD="s3cret", METRICS_PUBLIC=True)])
def test_public_metrics_are_documented_without_credentials(client):
    document = client.get("/api/openapi.json", headers={"Authorization": "Basic YWRhOnMzY3JldA=="}).get_json()

    assert document["paths"]["/metrics"]["get"]["security"] == []
    assert "401" not in document["paths"]["/metrics"]["get"]["responses"]


# The document as the test app serves it (the tests keep the default page sizes and run without auth); the
# first test below checks that the app serves exactly this.
DOCUMENT = document(
    {
        "MAX_PAGE_SIZE": Config.MAX_PAGE_SIZE,
        "DEFAULT_PAGE_SIZE": Config.DEFAULT_PAGE_SIZE,
        "METRICS_PUBLIC": Config.METRICS_PUBLIC,
    },
    auth_required=False,
)
# Refusing schema-violating input with 413 (too many form parts) is as right as a 400; so is a 401 once the fuzzer
# has created a user (from then on the app asks for credentials, which the fuzzer does not have).
FUZZ_CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 409, 413, 415, 422]}}}
)
live = schemathesis.openapi.from_dict(DOCUMENT, config=FUZZ_CONFIG).exclude(path_regex=STREAMS)


def test_the_fuzzed_document_is_the_served_one(client):
    assert client.get("/api/openapi.json").get_json() == DOCUMENT


CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]


@live.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_live_app_keeps_the_document(app, case):
    """No response is a 500, every status, content type, header and body is the documented one, and input
    that violates the document is refused."""
    excluded = []
    if case.body == "":
        # Schemathesis sends its schema-violating body "" as no body at all: a valid request for an optional
        # body (an upload without a file imports the sample), so accepting it is right.
        excluded.append(openapi_checks.negative_data_rejection)
    case.call_and_validate(app=app, checks=CHECKS, excluded_checks=excluded)

"""The downstream's state and "Test downstream" through the JSON API, and the check-downstream command."""

import pytest
from scripted_downstream import Reply


@pytest.mark.parametrize("app_config", [{}])
def test_the_simulated_downstream_answers_a_check(client):
    state = client.get("/api/downstream").get_json()["downstream"]
    assert state == {
        "kind": "simulated",
        "target": None,
        "breaker": "closed",
        "failures": 0,
        "paused_seconds": 0.0,
        "state_known": True,
        "last_check": None,
    }

    answer = client.post("/api/downstream/check").get_json()
    assert answer["check"]["ok"] is True and answer["check"]["answered"] is True
    assert answer["downstream"]["last_check"] == answer["check"]
    assert client.get("/api/downstream").get_json()["downstream"]["last_check"] == answer["check"]


@pytest.fixture
def app_config(downstream_server):
    return {"DOWNSTREAM": "webhook", "WEBHOOK_URL": downstream_server.url}


def test_a_webhook_check_sends_no_records_and_reports_its_answer(client, downstream_server):
    downstream_server.push(Reply(200), Reply(503, body={"error": "maintenance"}))

    first = client.post("/api/downstream/check").get_json()
    assert first["check"]["ok"] is True and first["check"]["status_code"] == 200
    assert first["downstream"]["target"] == downstream_server.url.removesuffix("/contacts")

    second = client.post("/api/downstream/check").get_json()["check"]
    assert (second["answered"], second["ok"], second["status_code"]) == (True, False, 503)
    assert second["message"] == "the downstream answered 503 Service Unavailable: maintenance"
    assert [call.records for call in downstream_server.calls] == [[], []]
    # A check is not delivery: the breaker counts none of it.
    assert client.get("/api/downstream").get_json()["downstream"]["failures"] == 0


def test_a_webhook_that_is_gone_does_not_answer(client, downstream_server):
    downstream_server.close()
    check = client.post("/api/downstream/check").get_json()["check"]
    assert (check["answered"], check["ok"]) == (False, False)
    assert check["message"].startswith("the downstream cannot be reached")


def test_check_downstream_on_the_command_line(runner, downstream_server):
    downstream_server.push(Reply(200), Reply(401, body={"error": "bad token"}))

    result = runner.invoke(args=["check-downstream"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("webhook downstream: OK (")

    result = runner.invoke(args=["check-downstream"])
    assert result.exit_code == 1
    assert "answers, but not with a success" in result.output and "401 Unauthorized: bad token" in result.output

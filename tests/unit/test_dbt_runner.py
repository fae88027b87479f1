"""The dbt runner's generated profile and arguments (no ClickHouse needed)."""

from __future__ import annotations

import json

from django.test import override_settings

from analytics.ml.dbt_runner import _subcommand_options, _with_vars, profile


@override_settings(
    CLICKHOUSE_URL="https://analyst:s%40cret@ch.internal:8443", CLICKHOUSE_DATABASE="shop"
)
def test_server_profile_comes_from_the_clickhouse_url():
    assert profile() == {
        "naboria": {
            "target": "server",
            "outputs": {
                "server": {
                    "type": "clickhouse",
                    "driver": "http",
                    "schema": "shop",
                    "send_receive_timeout": 3600,
                    "host": "ch.internal",
                    "port": 8443,
                    "user": "analyst",
                    "password": "s@cret",
                    "secure": True,
                    "threads": 4,
                }
            },
        }
    }


@override_settings(CLICKHOUSE_URL="http://clickhouse:8123")
def test_server_profile_defaults_to_the_default_user():
    output = profile()["naboria"]["outputs"]["server"]
    assert (output["user"], output["password"], output["port"], output["secure"]) == (
        "default",
        "",
        8123,
        False,
    )


@override_settings(CLICKHOUSE_URL="chdb:///var/naboria/clickhouse", CLICKHOUSE_DATABASE="naboria")
def test_embedded_profile_names_no_real_server_and_runs_one_thread():
    naboria = profile()["naboria"]
    assert naboria["target"] == "embedded"
    output = naboria["outputs"]["embedded"]
    assert (output["schema"], output["threads"], output["driver"]) == ("naboria", 1, "http")
    assert "password" not in output


def test_vars_of_the_caller_override_the_projects_and_stay_one_flag():
    args = _with_vars(
        ["build", "--vars", "{conversion_goal: Booking}", "--select", "marts"],
        {"conversion_goal": "Purchase", "site_timezones": {"abc": "Europe/Paris"}},
    )
    assert args[:3] == ["build", "--select", "marts"]
    assert args[3] == "--vars"
    assert json.loads(args[4]) == {
        "conversion_goal": "Booking",
        "site_timezones": {"abc": "Europe/Paris"},
    }
    assert args.count("--vars") == 1


def test_only_flags_the_subcommand_takes_are_added():
    build = _subcommand_options(["build", "--select", "marts"])
    assert {"--vars", "--project-dir", "--profiles-dir", "--target-path", "--log-path"} <= build
    assert "--vars" in _subcommand_options(["docs", "generate"])
    assert "--no-send-anonymous-usage-stats" in build
    assert "--target-path" not in _subcommand_options(["deps"])
    assert _subcommand_options(["--version"]) == set()

"""Detection types in the settings: unknown names are refused, list flags take commas.

``detectors_disabled`` with a name no detector reports (``pingpong``, ``latency-spike``) used to
start the collector with every detector on; it is refused now, naming the valid types, from a
flag or a variable, by ``agentmesh collector`` and ``agentmesh check`` alike (exit 2). List flags
take the comma-separated form their help offers, as their variables do, and a wrong
``--recovery-actions`` names the flag.
"""

import argparse
import json
import subprocess
import sys

import pytest

from agentmesh.collector.cli import main
from agentmesh.collector.cli.collector_cmd import add_collector_command
from agentmesh.collector.cli.settings_flags import load_from_flags
from agentmesh.collector.detectors import registry
from agentmesh.collector.recovery.policy import DETECTION_TYPES
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core import ConfigError

VARIABLE = "AGENTMESH_COLLECTOR_DETECTORS_DISABLED"
_MAIN = "import sys; from agentmesh.collector.cli import main; sys.exit(main(sys.argv[1:]))"


def _valid_types_named(message: str) -> bool:
    return "the types are: " + ", ".join(DETECTION_TYPES) in message


# --- the setting -------------------------------------------------------------------------------


def test_unknown_types_are_refused_with_the_valid_ones_and_a_guess() -> None:
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.load(detectors_disabled=["pingpong", "latency-spike", "stuck"])
    message = str(caught.value)
    assert "'pingpong' (did you mean 'ping_pong'?)" in message
    assert "'latency-spike' (did you mean 'latency_spike'?)" in message
    named = message.split("unknown detection types ")[1].split("; the types are")[0]
    assert "stuck" not in named  # a known type is not reported
    assert _valid_types_named(message)


def test_an_unknown_type_in_the_variable_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VARIABLE, "pingpong")
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.load()
    assert f"{VARIABLE}='pingpong': unknown detection type 'pingpong'" in str(caught.value)
    assert _valid_types_named(str(caught.value))


@pytest.mark.parametrize("value", ["latency_spike, token_spike", '["latency_spike","token_spike"]'])
def test_known_types_in_either_form_are_taken(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(VARIABLE, value)
    assert CollectorSettings.load().detectors_disabled == ["latency_spike", "token_spike"]


def test_every_type_can_be_disabled_and_is_built_by_the_registry() -> None:
    assert registry.DETECTION_TYPES == DETECTION_TYPES
    everything = CollectorSettings.load(detectors_disabled=list(DETECTION_TYPES))
    assert registry.build_rules(everything) == []
    assert registry.build_detectors(everything) == []
    assert len(registry.build_rules(CollectorSettings.load())) == 2


def test_the_registry_refuses_settings_that_skipped_validation() -> None:
    settings = CollectorSettings.load().model_copy(update={"detectors_disabled": ["pingpong"]})
    with pytest.raises(ConfigError, match=f"{VARIABLE}: unknown detection type 'pingpong'"):
        registry.build_rules(settings)
    with pytest.raises(ConfigError, match="the types are: handoff_loop, ping_pong"):
        registry.build_detectors(settings)


# --- flags -------------------------------------------------------------------------------------


def _flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_collector_command(parser)
    return parser.parse_args(list(argv))


def test_list_flags_take_comma_separated_values_as_their_help_says() -> None:
    args = _flags(
        "--detectors-disabled",
        "latency_spike,token_spike",
        "--detection-webhook-urls",
        "http://h/x, https://h.example/y",
        "--forward-otlp-endpoints",
        '["http://127.0.0.1:9/v1/traces"]',  # JSON still works
    )
    settings = load_from_flags(CollectorSettings, args)
    assert settings.detectors_disabled == ["latency_spike", "token_spike"]
    assert settings.detection_webhook_urls == ["http://h/x", "https://h.example/y"]
    assert settings.forward_otlp_endpoints == ["http://127.0.0.1:9/v1/traces"]


def test_a_wrong_value_of_a_list_flag_names_the_flag() -> None:
    args = _flags("--detectors-disabled", '["pingpong","latency-spike"]')
    with pytest.raises(ConfigError) as caught:
        load_from_flags(CollectorSettings, args)
    message = str(caught.value)
    assert (
        '--detectors-disabled=\'["pingpong","latency-spike"]\': unknown detection types' in message
    )
    assert VARIABLE not in message


def test_a_wrong_recovery_actions_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        load_from_flags(CollectorSettings, _flags("--recovery-actions", "pingpong=stop"))
    message = str(caught.value)
    assert "--recovery-actions='pingpong=stop': unknown detection type 'pingpong'" in message
    assert "AGENTMESH_COLLECTOR_RECOVERY_ACTIONS" not in message


def test_a_wrong_recovery_actions_variable_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_RECOVERY_ACTIONS", "stuck=kill")
    with pytest.raises(ConfigError, match="AGENTMESH_COLLECTOR_RECOVERY_ACTIONS='stuck=kill': un"):
        CollectorSettings.load()


# --- the commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "collector"])
def test_both_commands_exit_2_naming_the_valid_types(command: str) -> None:
    # In a process of its own: a collector that took the value would serve until killed.
    argv = [command, "--store", "memory", "--port", "0", "--http-port", "0"]
    argv += ["--detectors-disabled", '["pingpong","latency-spike"]']
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MAIN, *argv], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"agentmesh {command} started with an unknown detection type")
    assert done.returncode == 2, done.stderr
    assert "unknown detection types 'pingpong'" in done.stderr
    assert _valid_types_named(done.stderr)


def test_check_exits_2_for_an_unknown_type_in_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(VARIABLE, "pingpong")
    assert main(["check", "--store", "memory", "--port", "0", "--http-port", "0"]) == 2
    assert f"{VARIABLE}='pingpong'" in capsys.readouterr().err


def test_check_takes_the_comma_separated_form(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "--store", "memory", "--port", "0", "--http-port", "0", "--json"]
    assert main([*argv, "--detectors-disabled", "latency_spike,token_spike"]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert all(f["verdict"] != "fail" for f in findings)

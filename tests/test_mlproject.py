"""MLproject is written from the entry points' config dataclasses and matches them."""
import shlex

import yaml

from forgetting.mlproject import ENTRY_POINTS, ROOT, entry_config, render


def test_mlproject_is_written_from_the_configs():
    assert (ROOT / "MLproject").read_text() == render(), "MLproject is stale: run python -m forgetting.mlproject"


def test_every_entry_point_command_parses_to_its_config_defaults(monkeypatch):
    """The command MLflow runs with every default gives the config's defaults (an empty string included)."""
    from forgetting.cli import parse_config

    project = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]
    assert list(project) == list(ENTRY_POINTS)
    for entry, spec in project.items():
        values = {name: shlex.quote(str(p["default"])) for name, p in spec["parameters"].items()}
        argv = shlex.split(spec["command"].format(**values))[2:]
        config, _ = entry_config(entry)
        assert parse_config(config, entry, argv) == config(), entry


def test_evaluate_declares_only_what_every_suite_reads_and_the_rest_pass_through():
    """``mlflow run`` logs every declared parameter: evaluate declares the suites' common ones only, and a
    suite's own parameter still reaches the script the way MLflow passes an undeclared one (``--top_k 64``)."""
    from forgetting.cli import parse_config
    from forgetting.evaluation.suites import COMMON_FIELDS, EvaluateConfig

    project = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]
    assert tuple(project["evaluate"]["parameters"]) == COMMON_FIELDS
    assert tuple(project["main"]["parameters"]) == ("preset", "device", "gpus")
    assert parse_config(EvaluateConfig, "", ["--top_k", "64", "--probe-c", "0.5"]) == EvaluateConfig(
        top_k=64, probe_c=0.5)


def test_check_refuses_bad_parameters_in_one_line():
    import pytest

    from forgetting.cli import check
    from forgetting.errors import UsageError

    check("evaluate", ["-P", "suite=accuracy", "--param-list=task=arc_easy", "-Plimit=4", "--run-name", "x"])
    for args, message in [(["-P", "suite=nope"], "suite='nope' is not one of"),
                          (["-P", "top_k=x"], "top_k: invalid int value: 'x'"),
                          (["-P", "bogus=1"], "evaluate has no parameter 'bogus'"),
                          (["-P", "limit"], "-P limit is not key=value")]:
        with pytest.raises(UsageError, match=message):
            check("evaluate", args)
    with pytest.raises(UsageError, match="preset='nope' is not one of"):
        check("main", ["-P", "preset=nope"])
    with pytest.raises(UsageError, match="entry point 'nope' is not one of"):
        check("nope", [])


def test_help_lists_entry_points_and_an_entry_points_parameters():
    from forgetting.cli import describe

    listing = describe().splitlines()[1:]
    assert [line.split()[0] for line in listing] == list(ENTRY_POINTS)
    evaluate = describe("evaluate")
    assert "top_k=256" in evaluate and "probe_c=0.001" in evaluate and "model spec" in evaluate

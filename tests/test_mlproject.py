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

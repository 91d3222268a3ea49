"""Config files: the documented examples parse, and mistakes give one line naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.frugal_testkit import REPO, run_frugal

from cli.config import load_config, parse_config
from schemas.errors import ConfigError


def test_builtin_defaults_load_with_prices_for_every_model() -> None:
    from pipeline.app import resolve_all_prices

    config = load_config(REPO / "cli" / "defaults.toml", env={})
    assert {m.tier for m in config.models} == {1, 2, 3}
    assert set(resolve_all_prices(config)) == {m.name for m in config.models}


def test_the_readme_config_reference_is_a_valid_config() -> None:
    import tomllib

    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Configuration reference.*?```toml\n(.*?)```", readme, re.S)
    assert block, "README lost its config reference"
    config = parse_config(tomllib.loads(block.group(1)), "README")
    assert config.budgets[0].scope == "provider"
    assert config.route("ingest").chunk_tokens == 2000


def test_the_example_configs_load() -> None:
    for path in (REPO / "examples").glob("*.toml"):
        assert load_config(path, env={}).models, path


def test_env_supplies_secrets_and_bootstrap(tmp_path: Path) -> None:
    config = load_config(
        REPO / "cli" / "defaults.toml",
        env={
            "OPENAI_API_KEY": "sk-x",
            "FRUGAL_KAFKA_BOOTSTRAP": "k:9092",
            "FRUGAL_DATA_DIR": str(tmp_path),
        },
    )
    assert config.provider("openai").api_key is not None
    assert config.provider("openai").api_key.get_secret_value() == "sk-x"
    assert "sk-x" not in repr(config)
    assert config.kafka.bootstrap == "k:9092"
    assert config.storage.data_dir == tmp_path


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[kafka]\npartitions = 0\n", "kafka.partitions"),
        ("[kafka]\nbootstrapp = 'x'\n", "kafka.bootstrapp: unknown key"),
        ("[[budgets]]\nscope = 'provider'\nlimit_usd = 1\n", "match"),
        ("[routes.summarize]\nmin_tier = 1\n", "unknown job kind"),
        ("[[models]]\nname = 'm'\nprovider = 'nope'\nmodel = 'm'\n", "unknown provider 'nope'"),
        ("kafka = [", "not valid TOML"),
    ],
)
def test_a_bad_config_names_the_key(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "frugal.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(path, env={})


def test_the_cli_prints_one_line_for_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "frugal.toml"
    path.write_text("[kafka]\npartitions = 'many'\n")
    done = run_frugal(["report", "--config", str(path)], bootstrap="127.0.0.1:1")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "kafka.partitions" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    done = run_frugal(
        ["sql", "--config", str(tmp_path / "nope.toml"), "SELECT 1"], bootstrap="127.0.0.1:1"
    )
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr

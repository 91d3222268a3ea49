"""Loading `frugal.toml`: parse once into `schemas.config.Config`, apply env overrides."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from schemas.config import Config
from schemas.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("frugal.toml")
BUILTIN_DEFAULTS = Path(__file__).with_name("defaults.toml")
BOOTSTRAP_ENV = "FRUGAL_KAFKA_BOOTSTRAP"
DATA_DIR_ENV = "FRUGAL_DATA_DIR"


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{key}: {msg}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def parse_config(data: Mapping[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None


def apply_env(config: Config, env: Mapping[str, str]) -> Config:
    """Secrets and deployment knobs come from the environment, read here and nowhere else."""
    if env.get(BOOTSTRAP_ENV):
        config.kafka.bootstrap = env[BOOTSTRAP_ENV]
    if env.get(DATA_DIR_ENV):
        config.storage.data_dir = Path(env[DATA_DIR_ENV])
    for provider in config.providers:
        if provider.api_key is None and provider.api_key_env and env.get(provider.api_key_env):
            provider.api_key = SecretStr(env[provider.api_key_env])
    return config


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """The config from `path` (default ./frugal.toml, else built-in defaults) plus env."""
    env = os.environ if env is None else env
    if path is None:
        path = DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else BUILTIN_DEFAULTS
    elif not Path(path).exists():
        raise ConfigError(f"config file {path} does not exist")
    return apply_env(parse_config(_read_toml(Path(path)), str(path)), env)

"""Configuration: defaults in code, then a YAML file, then the environment.

``BOT_CONFIG`` names the YAML file when no path is given; ``REDIS_URL`` overrides
``redis.url``. The result is a plain nested dict; ``setting(config, "a.b", default)`` reads it.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from bot import defaults

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, Any] = {
    "wechat": {
        "token": "",
        "appid": "",
        "secret": "",
        "encoding_aes_key": "",
        "previous_encoding_aes_key": "",
        "api_base_url": defaults.API_BASE_URL,
        "timeout": defaults.HTTP_TIMEOUT_SECONDS,
    },
    "redis": {"url": "", "namespace": defaults.REDIS_NAMESPACE},
    "data_dir": "data",
    "tickets": {"prefix": defaults.TICKET_PREFIX, "response_hours": defaults.RESPONSE_HOURS},
    "webhook": {"max_body_bytes": defaults.MAX_BODY_BYTES, "dedupe_ttl_seconds": defaults.DEDUPE_TTL_SECONDS},
    "intake": {"expire_hours": defaults.INTAKE_TTL_SECONDS / 3600},
    "clocks": {
        "remind_hours": defaults.REMIND_HOURS,
        "merchant_join_remind_hours": defaults.MERCHANT_JOIN_REMIND_HOURS,
        "merchant_join_escalate_hours": defaults.MERCHANT_JOIN_ESCALATE_HOURS,
        "proposal_remind_hours": defaults.PROPOSAL_REMIND_HOURS,
        "proposal_expire_hours": defaults.PROPOSAL_EXPIRE_HOURS,
        "rating_timeout_hours": defaults.RATING_TIMEOUT_HOURS,
        "merchant_first_window_hours": defaults.MERCHANT_FIRST_WINDOW_HOURS,
        "acceptance_workdays": defaults.ACCEPTANCE_WORKDAYS,
        "mediation_days": defaults.MEDIATION_DAYS,
        "report_check_workdays": defaults.REPORT_CHECK_WORKDAYS,
    },
    "calendar": {"holidays": [], "workdays": []},
    "units": [],
    "routing": {"fallback_unit": "consumer_rights", "categories": []},
}


class ConfigError(ValueError):
    """The configuration cannot run the service; the message says which key and why."""


def _merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> dict:
    """Build the effective configuration. ``overrides`` (tests, demo) win over everything."""
    config = copy.deepcopy(DEFAULTS)
    path = path or os.environ.get("BOT_CONFIG")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        for section, value in loaded.items():
            if isinstance(config.get(section), dict) and not isinstance(value, dict):
                raise ConfigError(f"{path}: `{section}` must be a mapping of keys, not {type(value).__name__}")
        _merge(config, loaded)
        config["_path"] = str(path)
    if not config["routing"].get("categories"):
        # No routing table of one's own: use the one shipped in config.example.yaml (units too,
        # unless the file defines its own), so a config with only the wechat keys works.
        shipped = _shipped_example()
        config["routing"] = {**shipped["routing"], **{k: v for k, v in config["routing"].items() if k != "categories"},
                             "categories": shipped["routing"]["categories"]}
        if not config["units"]:
            config["units"] = copy.deepcopy(shipped["units"])
    if os.environ.get("REDIS_URL"):
        config["redis"]["url"] = os.environ["REDIS_URL"]
    if overrides:
        _merge(config, copy.deepcopy(overrides))
    _validate(config)
    return config


def _shipped_example() -> dict:
    with open(REPO_ROOT / "config.example.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _check_types(config: dict, example: dict, where: str = "") -> None:
    """Every number and list of numbers the shipped example has must be one here too: a typo
    such as `response_hours: abc` is refused at start-up, not at a consumer's 确认."""
    for key, sample in example.items():
        if key not in config or key in ("units", "routing", "places", "faq", "referrals"):
            continue
        value, name = config[key], f"{where}{key}"
        if isinstance(sample, dict) and isinstance(value, dict):
            _check_types(value, sample, name + ".")
        elif isinstance(sample, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, not {value!r}")
        elif isinstance(sample, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name} must be a number of zero or more, not {value!r}")
        elif isinstance(sample, list) and sample and all(isinstance(v, (int, float)) for v in sample):
            if not isinstance(value, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise ConfigError(f"{name} must be a list of numbers, not {value!r}")


def _validate(config: dict) -> None:
    _check_types(config, _shipped_example())
    unit_ids = {u.get("id") for u in config["units"]}
    for category in config["routing"].get("categories", []):
        if category.get("unit") not in unit_ids and unit_ids:
            raise ConfigError(f"routing category {category.get('id')!r} names unknown unit {category.get('unit')!r}")
    for name in ("encoding_aes_key", "previous_encoding_aes_key"):
        key = config["wechat"].get(name) or ""
        if key and not re.fullmatch(r"[A-Za-z0-9]{43}", key):
            raise ConfigError(f"wechat.{name} must be 43 letters and digits (or empty for plain mode)")


def setting(config: dict, dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def data_dir(config: dict) -> Path:
    path = Path(config.get("data_dir") or "data")
    if not path.is_absolute():
        base = Path(config["_path"]).parent if config.get("_path") else Path.cwd()
        path = base / path
    path.mkdir(parents=True, exist_ok=True)
    return path

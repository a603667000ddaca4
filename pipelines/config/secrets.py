"""Secrets in the file: ``{env: NAME}`` only (:class:`SecretRef`, :func:`resolve_secret`).

A literal where a secret belongs is refused, and so is a variable that is not set (or is empty).
The secret's text never appears in an error message.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import field_validator, model_validator

from .base import ConfigError, Section, fail, kind_of

__all__ = ["SecretRef", "env_name_problem", "env_value", "missing_env", "resolve_secret", "signer_from_secret"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_SHAPE = "must be {env: NAME}"


def env_name_problem(name: Any) -> str | None:
    """Why ``name`` is no environment variable name, or ``None`` if it is one."""
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        shown = repr(name) if isinstance(name, str) else kind_of(name)
        return f"env must be an environment variable name, not {shown}"
    return None


def env_value(name: str) -> str | None:
    """The variable's value; ``None`` if it is not set or empty."""
    value = os.environ.get(name)
    return value if value else None


def missing_env(name: str) -> str:
    """The message for a variable that is not set."""
    return f"environment variable {name} is not set"


class SecretRef(Section):
    """A secret in the file: ``{env: NAME}``; the value comes from the environment.

    A literal string where a secret belongs is refused, and so is a variable that is not set (or is
    empty) when the file is loaded. :meth:`value` reads the variable at use time.
    """

    env: str

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if isinstance(data, (SecretRef, dict)):
            return data
        if isinstance(data, str):
            raise fail(f"{_SECRET_SHAPE}, not a literal")
        raise fail(f"{_SECRET_SHAPE}, not {kind_of(data)}")

    @field_validator("env", mode="plain")
    @classmethod
    def _env_is_set(cls, name: Any) -> str:
        problem = env_name_problem(name)
        if problem:
            raise fail(problem)
        if env_value(name) is None:
            raise fail(missing_env(name))
        return name

    def value(self, where: str = "secret") -> str:
        found = env_value(self.env)
        if found is None:
            raise ConfigError(f"{where}: {missing_env(self.env)}")
        return found


def resolve_secret(value: Any, where: str) -> str:
    """The secret's value from ``{env: NAME}`` (a mapping from a raw section, or a :class:`SecretRef`).

    ``where`` names the setting in errors, e.g. ``"activitylog.yaml: notifications.destinations.ops.url"``.
    The secret's text never appears in an error message.
    """
    if isinstance(value, SecretRef):
        return value.value(where)
    if isinstance(value, str):
        raise ConfigError(f"{where}: {_SECRET_SHAPE}, not a literal")
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {_SECRET_SHAPE}, not {kind_of(value)}")
    extra = sorted(str(k) for k in value if k != "env")
    if extra:
        raise ConfigError(f"{where}: {_SECRET_SHAPE}; unknown key {extra[0]!r}")
    if "env" not in value:
        raise ConfigError(f"{where}: {_SECRET_SHAPE}; env is missing")
    problem = env_name_problem(value["env"])
    if problem:
        raise ConfigError(f"{where}: {problem}")
    found = env_value(value["env"])
    if found is None:
        raise ConfigError(f"{where}: {missing_env(value['env'])}")
    return found


def signer_from_secret(secret: Any, origin: str, where: str = "checkpoints.signing_key"):
    """The checkpoint signer (:class:`transforms.checkpoints.Signer`) configured as ``{env: NAME}`` (a
    mapping or a :class:`SecretRef`): the secret is resolved here, its text handed down to the signer."""
    from transforms.checkpoints import Signer

    return Signer.from_text(resolve_secret(secret, where), name=origin)

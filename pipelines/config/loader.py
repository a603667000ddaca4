"""Reading the file: where it is found, strict YAML (no repeated keys, no impossible dates) and
:func:`load_config`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .base import ConfigError, kind_of
from .errors import one_line, problems, validate_model
from .root import CONFIG_ENV, DEFAULT_CONFIG, SECTIONS, ActivityLogConfig

__all__ = ["load_config", "load_section"]


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key repeated in one mapping (the later one would silently win)."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            f"found duplicate key {key!r}", key_node.start_mark,
                        )
                    seen.add(key)
                except TypeError:  # unhashable key: let PyYAML report it
                    pass
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node):  # noqa: ANN001 - PyYAML's signature
        """An unquoted date that is no date (``2024-13-45``) is a YAML error at its line, not a crash."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a date ({exc})", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _yaml_error(label: str, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if mark is not None:
        context_mark = getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark.line != mark.line:
            context = f"{context} at line {context_mark.line + 1}"
        detail = problem if not context else f"{problem} ({context})"
        return ConfigError(f"{label}: invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {detail}")
    return ConfigError(f"{label}: invalid YAML: {problem}")


def _resolve_path(path: str | Path | None) -> tuple[Path, str, str]:
    """(path, label for messages, origin: "arg" | "env" | "default")."""
    if path is not None and str(path) != "":
        return Path(path).expanduser(), str(path), "arg"
    env = os.environ.get(CONFIG_ENV, "").strip()
    if env:
        return Path(env).expanduser(), env, "env"
    return Path(DEFAULT_CONFIG), DEFAULT_CONFIG, "default"


def _read_yaml(file: Path, label: str) -> Any:
    """The parsed document; unreadable files, bad UTF-8 and bad YAML → :class:`ConfigError` at the line."""
    if file.is_dir():
        raise ConfigError(f"{label}: is a directory, not a YAML file")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{label}: not valid UTF-8 at line {line}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise _yaml_error(label, exc) from None


def _read_sections(path: str | Path | None) -> tuple[Path | None, str, dict]:
    """(file, label, its mapping of sections); file None when no file is given and the implicit one is
    absent. A named file that does not exist, or one that is not a mapping, is a :class:`ConfigError`."""
    file, label, origin = _resolve_path(path)
    if not file.exists():
        if origin == "default":
            return None, label, {}
        if origin == "env":
            raise ConfigError(f"{CONFIG_ENV}={label} does not exist")
        raise ConfigError(f"config file {label} does not exist")
    data = _read_yaml(file, label)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must be a mapping of sections ({', '.join(SECTIONS)}), not {kind_of(data)}")
    return file, label, data


def load_config(path: str | Path | None = None) -> ActivityLogConfig:
    """Read and validate the configuration file (see :mod:`pipelines.config` for where it is found).

    Raises :class:`ConfigError` with a one-line message naming the file and the offending entry.
    """
    file, label, data = _read_sections(path)
    if file is None:
        return ActivityLogConfig()
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"{label}: section names must be strings, not {kind_of(odd[0])} {odd[0]!r} "
                          f"(allowed: {', '.join(SECTIONS)})")

    source = file.resolve()
    try:
        config = ActivityLogConfig.model_validate(data, context={"base_dir": source.parent})
    except ValidationError as exc:
        raise ConfigError(one_line(exc, ActivityLogConfig, label, nested=False),
                          problems(exc, ActivityLogConfig)) from None
    config._source = source
    config._label = label
    return config


def load_section(name: str, model: type, path: str | Path | None = None) -> Any:
    """One section of the file (found as by :func:`load_config`), validated alone: a process that needs
    one section (the read API: ``visibility``) neither reads the others nor needs their secrets. A
    missing implicit file, a missing or empty section: the model's defaults."""
    file, label, data = _read_sections(path)
    if file is None:
        return model()
    section = data.get(name)
    if section is None:
        return model()
    if not isinstance(section, dict):
        raise ConfigError(f"{label}: {name}: must be a mapping, not {kind_of(section)}")
    return validate_model(model, section, where=f"{label}: {name}", base_dir=file.resolve().parent)

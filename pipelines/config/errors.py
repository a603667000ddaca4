"""Pydantic's validation errors → one line: ``file: section.entry.field: message; ...``.

Each error is first a :class:`~transforms.problems.Problem` (its location in the file, and the
message), kept on the :class:`ConfigError` as ``problems``. :func:`validate_model` validates any
section model (or a raw mapping) the same way the loader does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from transforms.problems import Problem

from .base import ConfigError, kind_of
from .root import ActivityLogConfig

__all__ = ["one_line", "problems", "validate_model"]


def _unwrap(annotation: Any) -> list[Any]:
    """The candidate types inside Annotated/Optional/Union."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or (origin is not None and type(annotation).__name__ == "UnionType"):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class validating the value at ``loc`` (for listing allowed keys), if it can be found."""
    candidates: list[Any] = [root]
    for part in loc:
        following: list[Any] = []
        for candidate in candidates:
            for kind in _unwrap(candidate):
                origin, args = get_origin(kind), get_args(kind)
                if isinstance(part, str) and isinstance(kind, type) and issubclass(kind, BaseModel):
                    field = kind.model_fields.get(part)
                    if field is not None:
                        following.append(field.annotation)
                elif isinstance(part, int) and origin in (list, tuple, set, frozenset) and args:
                    following.append(args[0])
                elif isinstance(part, str) and origin is dict and len(args) == 2:
                    following.append(args[1])
        candidates = following
    for candidate in candidates:
        for kind in _unwrap(candidate):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                return kind
    return None


def _problem(error: dict[str, Any], root: type[BaseModel]) -> Problem:
    """The location and message of one pydantic error."""
    loc = tuple(error["loc"])
    kind = error["type"]
    given = error.get("input")
    if kind == "activitylog":
        message = error["ctx"]["message"]
    elif kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        allowed = ", ".join(model.model_fields) if model is not None else ""
        what = "unknown section" if model is ActivityLogConfig else "unknown key"
        message = f"{what} (allowed: {allowed})" if allowed else what
    elif kind == "missing":
        message = "is required"
    elif kind in ("model_type", "model_attributes_type", "dict_type", "dataclass_type"):
        message = f"must be a mapping, not {kind_of(given)}"
    elif kind in ("list_type", "tuple_type", "set_type"):
        message = f"must be a list, not {kind_of(given)}"
    elif kind == "string_type":
        message = f"must be a string, not {kind_of(given)}"
    elif kind == "value_error" and "error" in error.get("ctx", {}):
        message = str(error["ctx"]["error"])
    else:
        text = error["msg"]
        message = text[:1].lower() + text[1:]
    return Problem(loc, message)


def problems(exc: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Every error of ``exc`` as a :class:`Problem` whose path starts at ``root``."""
    return [_problem(error, root) for error in exc.errors()]


def one_line(exc: ValidationError, root: type[BaseModel], head: str, *, nested: bool) -> str:
    """All problems on one line. ``head`` is the file (``nested=False``: ``file: loc: msg``) or a
    location already (``nested=True``: ``file: section.loc: msg``)."""
    seen: list[str] = []
    for problem in problems(exc, root):
        location, message = problem.where, problem.message
        if not location:
            text = f"{head}: {message}"
        elif nested:
            text = f"{head}{'' if location.startswith('[') else '.'}{location}: {message}"
        else:
            text = f"{head}: {location}: {message}"
        if text not in seen:
            seen.append(text)
    if not seen:
        return f"{head}: invalid"
    return "; ".join(seen)


def validate_model(model: type[BaseModel], data: Any, *, where: str, base_dir: Path | None = None) -> Any:
    """Validate ``data`` (e.g. a raw section) with ``model``; errors → :class:`ConfigError` whose
    locations continue ``where`` (``"activitylog.yaml: notifications"`` → ``...notifications.x[0]: ...``)."""
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(one_line(exc, model, where, nested=True), problems(exc, model)) from None

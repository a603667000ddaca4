"""Where an input is wrong and why: a :class:`Problem` is a location in the input (a path of keys and
indexes) and a message, so that a caller names the place in its own terms (a CLI flag, a query
parameter, a configuration entry) without reading it back out of the message's text.

    Problem(("scopes", 0), "must not be empty").where                    # 'scopes[0]'
    Problem(("detail_filters", Key("changes[].field"), "value"), "…").where
                                                                         # "detail_filters['changes[].field'].value"
    str(Problem(("end",), "2024-01-01 is before start 2024-02-01"))      # 'end: 2024-01-01 is before start …'

Used by the filter language (:class:`transforms.filters.FilterError`) and the configuration file's
errors (:mod:`pipelines.config.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Union

__all__ = ["Key", "Problem", "Step", "render"]


class Key(str):
    """A step that is a free-form key of a mapping (a detail path such as ``changes[].field``): shown
    quoted, ``['changes[].field']``, where a name is shown ``.name``. Equal to the plain string."""

    __slots__ = ()


#: One step of a path: a key of a mapping or an index of a list.
Step = Union[str, int]


def render(path: Iterable[Step]) -> str:
    """``("exports", 0, "filter")`` → ``exports[0].filter``; a :class:`Key` step → ``['…']``."""
    text = ""
    for step in path:
        if isinstance(step, Key):
            text += f"[{str(step)!r}]"
        elif isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else str(step)
    return text


@dataclass(frozen=True)
class Problem:
    """What is wrong (``message``) and where (``path``, from the root of the input).

    ``named``: the message names the last step itself (``unknown field 'colour'``, ``Detail filter
    'name' must be an object``), so :attr:`where` stops before it."""

    path: tuple[Step, ...]
    message: str
    named: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", tuple(self.path))

    @property
    def where(self) -> str:
        """The location as the message is shown after it (``scopes[0]``; empty at the root)."""
        return render(self.path[:-1] if self.named else self.path)

    @property
    def field(self) -> Step | None:
        """The first step (a filter's field, a configuration section), None at the root."""
        return self.path[0] if self.path else None

    def within(self, *steps: Step) -> "Problem":
        """The same problem, its path continuing ``steps`` (the input was found there)."""
        return replace(self, path=tuple(steps) + self.path)

    def renamed(self, names: Mapping[Step, Step]) -> "Problem":
        """The first step spelled as the caller spells it (``{"scopes": "--scope"}``), when ``names`` has it."""
        if not self.path or self.path[0] not in names:
            return self
        return replace(self, path=(names[self.path[0]],) + self.path[1:])

    def __str__(self) -> str:
        where = self.where
        return f"{where}: {self.message}" if where else self.message

""":class:`FilterError`: a filter cannot be used, with the :class:`~transforms.problems.Problem` that says
where (a path into the filter's fields) and why."""

from __future__ import annotations

from transforms.problems import Problem


class FilterError(ValueError):
    """A filter cannot be used; the message names the field.

    ``problem``: where, as a path into the filter's fields (``("scopes", 0)``,
    ``("detail_filters", Key("name"), "operation")``), and what. ``origin``: where the filter itself came
    from, as :meth:`~transforms.filters.ActivityFilter.from_dict` was told (``activitylog.yaml:
    exports[0].filter``; None when it was not told). ``str()`` is ``origin: where: message``."""

    def __init__(self, problem: Problem | str, origin: str | None = None):
        if not isinstance(problem, Problem):
            problem = Problem((), str(problem))
        self.problem, self.origin = problem, origin
        super().__init__(_text(problem, origin))

    @property
    def problems(self) -> list[Problem]:
        """Every problem found (a filter stops at its first)."""
        return [self.problem]

    def __reduce__(self):
        return type(self), (self.problem, self.origin)


def _text(problem: Problem, origin: str | None) -> str:
    """``origin: where: message``. A problem with a location inside a filter from an unnamed origin
    (``origin=""``) shows no origin; one without a location keeps the empty origin (``": must be …"``)."""
    if origin is None or (origin == "" and problem.where):
        return str(problem)
    return f"{origin}: {problem}"


def fail(path: tuple, message: str, *, named: bool = False) -> FilterError:
    """The error for ``message`` at ``path`` (raise it)."""
    return FilterError(Problem(path, message, named))

"""The one error of the export package."""


class ExportError(Exception):
    """The export cannot be made (bad destination, nothing to read); the message says why."""

"""The CLI's view of a run: the ops' own progress messages, short, without Dagster's engine events.

Every run's full log (engine events, materializations, each message) is in the Dagster instance as
always; this logger only decides what the terminal shows. Counters like ``[3/30] 2026-11-02: …`` are
one line rewritten in place on a terminal, and only their last step elsewhere (a pipe, a CI log), so
a 365-day refresh prints a handful of lines, not hundreds. Warnings and errors are always printed.
"""


import logging
import re
import sys

import dagster as dg

_COUNTER = re.compile(r"^\[(\d+)/(\d+)\]")


class ProgressHandler(logging.Handler):
    def __init__(self, stream=None) -> None:
        super().__init__()
        self.stream = stream or sys.stdout
        self._open_line = False  # a counter line waiting to be rewritten or ended

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        if meta.get("dagster_event") is not None and record.levelno < logging.WARNING:
            return  # engine events (step started, materialization, …) stay in the run's log
        message = meta.get("orig_message", record.getMessage())
        step = meta.get("step_key")
        text = f"  {step}: {message}" if step else f"  {message}"
        counter = _COUNTER.match(message) if record.levelno < logging.WARNING else None
        if counter is None:
            self._end_line()
            print(text, file=self.stream, flush=True)
            return
        done, total = int(counter.group(1)), int(counter.group(2))
        if self.stream.isatty():
            print(f"\r\033[K{text}", end="", file=self.stream, flush=True)
            self._open_line = True
            if done == total:
                self._end_line()
        elif done == total:
            print(text, file=self.stream, flush=True)

    def _end_line(self) -> None:
        if self._open_line:
            print(file=self.stream, flush=True)
            self._open_line = False


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO", is_required=False)},
    description="Short progress for the terminal: the ops' messages, counters collapsed, no engine events.",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("activitylog.progress")
    logger.propagate = False
    logger.setLevel(init_context.logger_config["log_level"])
    logger.handlers = [ProgressHandler()]
    return logger

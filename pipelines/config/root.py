"""The whole file: :class:`ActivityLogConfig`, one field per section, and the section names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, model_validator

from .base import Section
from .exports import ExportSchedule, exports_shape, unique_export_names
from .masking import MaskingConfig
from .ask import AskConfig
from .audit import AuditConfig
from .publish import PublishConfig
from .notifications import NotificationsConfig
from .reference import ReferenceConfig
from .retention import RetentionConfig
from .streams import StreamConfig, streams_shape
from .visibility import VisibilityConfig

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG", "SECTIONS", "ActivityLogConfig"]

CONFIG_ENV = "ACTIVITYLOG_CONFIG"
DEFAULT_CONFIG = "activitylog.yaml"

#: Top-level sections, in the order the design lists them.
SECTIONS: tuple[str, ...] = ("notifications", "streams", "exports", "retention", "masking", "reference", "publish",
                             "visibility", "ask", "audit")

#: Sections where ``name:`` with nothing under it means "defaults", like leaving the section out.
_NULL_MEANS_DEFAULT = ("masking", "reference", "notifications", "retention", "publish", "visibility", "ask", "audit")


class ActivityLogConfig(Section):
    """The whole file. ``ActivityLogConfig()`` is the all-defaults configuration."""

    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    streams: Annotated[dict[str, StreamConfig], BeforeValidator(streams_shape)] = Field(default_factory=dict)
    exports: Annotated[
        list[ExportSchedule], BeforeValidator(exports_shape), AfterValidator(unique_export_names)
    ] = Field(default_factory=list)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    visibility: VisibilityConfig = Field(default_factory=VisibilityConfig)
    ask: AskConfig = Field(default_factory=AskConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)

    _source: Path | None = PrivateAttr(default=None)
    _label: str = PrivateAttr(default=DEFAULT_CONFIG)

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (v is None and k in _NULL_MEANS_DEFAULT)}
        return data

    @property
    def source(self) -> Path | None:
        """The file this was loaded from (absolute), or ``None`` for the defaults."""
        return self._source

    def where(self, location: str) -> str:
        """``"activitylog.yaml: retention.default"``: the prefix for errors about a section's entry."""
        return f"{self._label}: {location}"

"""Stage switches that change without a restart: ranker on/off, default reranker method,
candidate count.

The settings give the values at start; ``switches_file`` (a JSON object, typically a
ConfigMap key mounted as a file) overrides any of them and is re-read when it changes, at
most every ``switches_poll_s`` seconds, checked on the request path (one ``stat``). A file
that is missing, unreadable or invalid leaves the last good values in force and is logged:
an operator's typo must not take the service down. Every answer carries the values it was
served with in ``versions["stage_switches"]``.

Example overrides file, for an incident where the ranker must be bypassed::

    {"ranker_enabled": false, "default_reranker_method": "mmr", "candidate_count": 50}
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.orchestrator.config import OrchestratorSettings, RerankerMethodName
from services.orchestrator.domain import RerankMethod

log = logging.getLogger(__name__)

METHODS: dict[RerankerMethodName, RerankMethod] = {
    "unspecified": RerankMethod.UNSPECIFIED,
    "none": RerankMethod.NONE,
    "mmr": RerankMethod.MMR,
    "dpp": RerankMethod.DPP,
}


@dataclass(frozen=True)
class StageSwitches:
    """The values one request is served with."""

    ranker_enabled: bool
    default_reranker_method: RerankMethod
    candidate_count: int

    @classmethod
    def from_settings(cls, settings: OrchestratorSettings) -> StageSwitches:
        return cls(
            ranker_enabled=settings.ranker_enabled,
            default_reranker_method=METHODS[settings.default_reranker_method],
            candidate_count=settings.candidate_count,
        )

    @property
    def label(self) -> str:
        """The value of ``versions["stage_switches"]``."""
        return (
            f"ranker={'on' if self.ranker_enabled else 'off'};"
            f"reranker_method={self.default_reranker_method.value};"
            f"candidates={self.candidate_count}"
        )


class SwitchOverrides(BaseModel):
    """The overrides file: every key optional, unknown keys refused (a misspelt switch
    silently ignored is worse than one refused)."""

    model_config = ConfigDict(extra="forbid")

    ranker_enabled: bool | None = None
    default_reranker_method: RerankerMethodName | None = None
    candidate_count: int | None = Field(None, ge=1)

    def apply(self, base: StageSwitches) -> StageSwitches:
        changes: dict[str, object] = {}
        if self.ranker_enabled is not None:
            changes["ranker_enabled"] = self.ranker_enabled
        if self.default_reranker_method is not None:
            changes["default_reranker_method"] = METHODS[self.default_reranker_method]
        if self.candidate_count is not None:
            changes["candidate_count"] = self.candidate_count
        return replace(base, **changes)  # type: ignore[arg-type]


class SwitchBoard:
    """The current StageSwitches: the settings' values, overlaid with the overrides file."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = StageSwitches.from_settings(settings)
        self._path = Path(settings.switches_file) if settings.switches_file else None
        self._poll_s = settings.switches_poll_s
        self._clock = clock
        self._current = self._base
        self._seen: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self.reload()

    def __call__(self) -> StageSwitches:
        if self._path is not None and self._clock() - self._checked_at >= self._poll_s:
            self.reload()
        return self._current

    def reload(self) -> bool:
        """Re-read the overrides file if it changed; True when the switches changed."""
        self._checked_at = self._clock()
        if self._path is None:
            return False
        try:
            # A ConfigMap update swaps a symlink: stat follows it, so inode or size or
            # mtime changes even when the mtime granularity would hide a quick edit.
            st = self._path.stat()
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            log.warning("stage switches file unreadable", extra={"error": type(exc).__name__})
            return False
        else:
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._seen:
            return False
        self._seen = stamp
        if stamp is None:
            new = self._base  # the file was removed: back to the settings' values
        else:
            try:
                overrides = SwitchOverrides.model_validate(json.loads(self._path.read_text()))
            except (OSError, ValueError, ValidationError) as exc:
                log.warning(
                    "stage switches file invalid; keeping the last good values",
                    extra={"error": type(exc).__name__},
                )
                return False
            new = overrides.apply(self._base)
        changed = new != self._current
        if changed:
            log.warning("stage switches changed", extra={"switches": new.label})
        self._current = new
        return changed

"""Wall time per stage of one prediction (receive → decode → preprocess → infer → postprocess).

Every stage is observed into ``medserve_stage_duration_seconds`` as it ends, and the answer
carries the same figures in ms (``timings_ms``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .metrics import STAGE_LATENCY

#: The stages an answer reports, in the order a request passes them.
STAGES = ("receive", "decode", "preprocess", "infer", "postprocess")


@dataclass
class StageClock:
    """Wall time per stage in ms, observed into ``medserve_stage_duration_seconds``."""

    model: str
    ms: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.perf_counter)

    def record(self, stage: str, started: float, *, part: str | None = None) -> None:
        """Add the time since ``started`` (a ``time.perf_counter()`` value, s) to ``stage``
        and, when given, to the finer ``part`` of it (a cascade's ``localiser.infer``)."""
        elapsed = time.perf_counter() - started
        for name in (stage, part) if part is not None else (stage,):
            self.ms[name] = self.ms.get(name, 0.0) + elapsed * 1000
            STAGE_LATENCY.labels(self.model, name).observe(elapsed)

    def finish(self) -> dict[str, float]:
        """ms per stage (0 for a stage not passed), then any finer stage recorded (a cascade's
        ``localiser.infer``...), and ``total`` since the clock started."""
        timings = {stage: round(self.ms.get(stage, 0.0), 3) for stage in STAGES}
        timings |= {stage: round(ms, 3) for stage, ms in self.ms.items() if stage not in STAGES}
        timings["total"] = round((time.perf_counter() - self._start) * 1000, 3)
        return timings

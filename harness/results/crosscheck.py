"""What the cross-check found: each target's harness figure beside an independent peer's (the
runtime vendor's own benchmark program, or a plain loop written as a user would), timed in the
same interleaved rounds."""

from __future__ import annotations

from pydantic import Field

from resnest_bench.harness.results.record import Record
from resnest_bench.harness.results.stats import RoundRatio

# A target whose harness median is more than this share away from its peer's is flagged.
TOLERANCE = 0.10


class CrosscheckRow(Record):
    """One target: its peer, both batch-1 medians (median over rounds, ms), their ratio, and
    why it is flagged (None: within TOLERANCE). `vendor` is the vendor's own program where it
    times something else than a call's wall time (OpenVINO's benchmark_app reports the
    plugin's InferRequest.latency): shown beside, never flagged on."""

    target: str
    peer: str
    harness_ms: float
    peer_ms: float
    ratio: RoundRatio  # harness median / peer median per round
    flag: str | None = None
    vendor: str | None = None
    vendor_ms: float | None = None


class Crosscheck(Record):
    """Every cross-checked target, those without a peer (target -> why), the settings both sides
    shared, and the tolerance used."""

    rows: list[CrosscheckRow] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)
    threads: int
    batch: int = 1
    rounds: int
    tolerance: float = TOLERANCE
    peer_environment: str  # what the peers' processes started with (the thread policy's part)

    def flags(self) -> dict[str, str]:
        """target -> why it is flagged, for the flagged rows."""
        return {row.target: row.flag for row in self.rows if row.flag}

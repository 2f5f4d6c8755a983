"""The base of every result model: immutable, strict about keys, JSON-safe numbers.

A result is evidence: it must not change after it is measured (frozen), a key we do not know
is a bug or a foreign file (extra="forbid"), and JSON has no NaN or infinity (refused here,
where the value is made, rather than later when the file is written).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A frozen result model whose JSON keys are exactly its field names."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

"""Validation (VEE): one pipeline, stable reason codes, nothing lost."""

from amr.validation.pipeline import (
    BatchResult,
    ContextLoader,
    ContextRequest,
    Outcome,
    Pipeline,
    Rejection,
    Summary,
)
from amr.validation.reasons import Reason, describe

__all__ = [
    "BatchResult",
    "ContextLoader",
    "ContextRequest",
    "Outcome",
    "Pipeline",
    "Reason",
    "Rejection",
    "Summary",
    "describe",
]

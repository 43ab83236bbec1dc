"""What every detector is given and what it must provide."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from config.rules import Rules
from models.events import Event
from models.findings import Finding
from models.state import OrderRecord, OutletState, PartitionState

if TYPE_CHECKING:
    from models.detectors.forest import ForestModel
    from models.features import ClaimFeatures

DAY = 86400.0


@dataclass(slots=True)
class Context:
    """One event with the state it is judged against (the engine builds it)."""

    event: Event
    outlet: OutletState
    partition: PartitionState
    record: OrderRecord
    claim: ClaimFeatures | None = None  # settlement events only
    forest: ForestModel | None = None  # the partition's model once trained; settlements only


class Detector(Protocol):
    """River-style detector: hyperparameters in ``__init__``, state outside it."""

    name: ClassVar[str]

    def __init__(self, rules: Rules) -> None: ...

    def score_one(self, ctx: Context) -> list[Finding]:
        """Findings about ``ctx.event``; must not change any state."""
        ...

    def learn_one(self, ctx: Context) -> None:
        """Fold ``ctx.event``, judged normal, into the state."""
        ...

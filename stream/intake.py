"""The front of the pipeline shared by the stream worker and replay: decode each raw
message, count it, and turn bad input into a dead-letter record instead of an error."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.metrics import Metrics
from models.decode import Rejection, decode
from models.events import Event
from stream.dead_letter import Origin, dead_letter_record


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Bad input: the record to write to the dead letter and the rejection behind it."""

    record: bytes
    rejection: Rejection


class Intake:
    """Decodes raw input and keeps the events-in and dead-letter counters."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def admit(self, raw: bytes) -> Event | Rejection:
        """The typed event for ``raw``, or why it is rejected; counted either way."""
        result = decode(raw)
        if isinstance(result, Rejection):
            self.metrics.dead_letters_by_reason[result.reason].inc()
        else:
            self.metrics.events_in_by_kind[result.kind].inc()
        return result

    @staticmethod
    def dead_letter(raw: bytes, rejection: Rejection, origin: Origin) -> DeadLetter:
        """The dead letter to write for rejected ``raw`` read at ``origin`` (built only for
        bad input: most input is good, and replay reads hundreds of thousands of lines)."""
        return DeadLetter(dead_letter_record(raw, rejection, origin), rejection)

"""Event simulator: a synthetic after-sales network (outlets, orders, settlements) with
legitimate odd patterns and labelled injected anomalies, for developing and scoring the
detectors. ``simulate`` is pure; ``write_outputs`` writes the files; ``cli.simulate`` is
the command line.
"""

from stream.simulator.config import SimulationConfig
from stream.simulator.engine import SimulationResult, simulate
from stream.simulator.output import write_outputs

__all__ = ["SimulationConfig", "SimulationResult", "simulate", "write_outputs"]

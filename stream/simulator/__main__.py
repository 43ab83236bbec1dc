"""``python -m stream.simulator``: the simulate command on its own."""

from stream.simulator.cli import simulate

if __name__ == "__main__":
    simulate()

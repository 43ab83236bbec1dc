"""Types of the C module models/_treewalk.c."""

def walk(nodes: bytes, roots: bytes, row: object) -> float:
    """The summed leaf values of ``row``'s path (a float64 buffer) in every tree."""

"""A tiny pure-Python raster canvas written as an indexed-colour PNG.

Enough for a small line chart in an email (a few KB): dots, lines, rectangles and
ASCII digits in a 3x5 pixel font, scaled. No font files, no native libraries, nothing
that reads the environment, so a mail renders the same on every worker.
"""

from __future__ import annotations

import struct
import zlib

# 3x5 glyphs, one string of 15 "0"/"1" per character, rows top to bottom.
GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
    ".": "000000000000010",
    "-": "000000111000000",
    ":": "000010000010000",
    "/": "001001010100100",
    " ": "000000000000000",
    "k": "100101110101101",
}


class Canvas:
    """A ``width`` x ``height`` image over a palette of RGB colours (index 0: background)."""

    def __init__(self, width: int, height: int, palette: list[tuple[int, int, int]]) -> None:
        if not 1 <= len(palette) <= 256:
            raise ValueError(f"a palette holds 1-256 colours, got {len(palette)}")
        self.width, self.height, self.palette = width, height, palette
        self.pixels = bytearray(width * height)

    def dot(self, x: int, y: int, colour: int) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.pixels[y * self.width + x] = colour

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: int) -> None:
        """Fill the rectangle with corners (x0, y0) and (x1, y1), both included."""
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.width, max(x0, x1) + 1)):
                self.pixels[y * self.width + x] = colour

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: int, dash: int = 0) -> None:
        """A straight line (Bresenham); ``dash`` > 0 draws that many pixels on, then off."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                self.dot(x0, y0, colour)
            if x0 == x1 and y0 == y1:
                return
            step += 1
            doubled = 2 * error
            if doubled >= dy:
                error, x0 = error + dy, x0 + sx
            if doubled <= dx:
                error, y0 = error + dx, y0 + sy

    def text(self, x: int, y: int, text: str, colour: int, scale: int = 2) -> None:
        """``text`` (digits and ``.-:/ k``; other characters are skipped) from the top
        left corner (x, y)."""
        for char in text:
            glyph = GLYPHS.get(char)
            if glyph is None:
                continue
            for index, bit in enumerate(glyph):
                if bit == "1":
                    gx, gy = x + (index % 3) * scale, y + (index // 3) * scale
                    self.rect(gx, gy, gx + scale - 1, gy + scale - 1, colour)
            x += 4 * scale

    def png(self) -> bytes:
        """The image as PNG bytes (8-bit palette, one zlib stream)."""
        rows = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width : (y + 1) * self.width])
            for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 3, 0, 0, 0)
        palette = b"".join(bytes(rgb) for rgb in self.palette)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"PLTE", palette)
            + _chunk(b"IDAT", zlib.compress(rows, 9))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

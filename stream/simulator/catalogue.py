"""The static catalogue of the simulated business: services, product categories, parts,
base labour fees and the standard fee table.

Kept separate from the random world (world.py) so that the things a real network would
configure centrally (fee standards, part list prices) live in one readable place, while
everything outlet-specific is drawn from the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

SERVICES: tuple[str, ...] = ("install", "repair", "maintenance", "uninstall", "inspection")
"""Service types; ``inspection`` is the rare extra one."""

SERVICE_SHARE: tuple[float, ...] = (0.38, 0.36, 0.16, 0.08, 0.02)
SERVICE_LABOUR_FACTOR: tuple[float, ...] = (1.2, 1.0, 0.7, 0.8, 0.4)
WEEKEND_FACTOR: tuple[float, ...] = (1.3, 0.9, 1.15, 1.25, 0.5)
"""Demand on Saturday/Sunday relative to a weekday, per service (people are home)."""

STANDARD_HEADROOM = 1.45
"""Fee-table standard = base labour x this, rounded up to 5 CNY; outlet tariffs are capped
at the standard, so normal labour never exceeds it."""


@dataclass(frozen=True, slots=True)
class Part:
    """A spare part: code, list price per unit, which services use it, and how often."""

    code: str
    price: float
    uses: str  # letters: i = install, r = repair, m = maintenance
    weight: float
    bulk: bool = False  # sold by the metre / kilogram / cartridge: quantity often > 1


@dataclass(frozen=True, slots=True)
class Category:
    """A product category: demand share, base labour fee and its parts."""

    name: str
    share: float
    labour_base: float
    parts: tuple[Part, ...]


CATEGORIES: tuple[Category, ...] = (
    Category(
        "air_conditioner",
        0.28,
        120.0,
        (
            Part("AC-CAP", 45.0, "r", 5.0),
            Part("AC-SNS", 35.0, "r", 3.0),
            Part("AC-GAS", 90.0, "rm", 4.0, bulk=True),
            Part("AC-FAN", 220.0, "r", 2.0),
            Part("AC-PCB", 380.0, "r", 2.0),
            Part("AC-CMP", 1200.0, "r", 0.6),
            Part("AC-PIPE", 40.0, "i", 6.0, bulk=True),
            Part("AC-RMT", 30.0, "r", 1.0),
        ),
    ),
    Category(
        "washing_machine",
        0.17,
        60.0,
        (
            Part("WM-PUMP", 85.0, "r", 4.0),
            Part("WM-BELT", 30.0, "r", 3.0),
            Part("WM-VLV", 45.0, "r", 3.0),
            Part("WM-SEAL", 70.0, "r", 2.0),
            Part("WM-BRG", 60.0, "r", 1.5),
            Part("WM-PCB", 260.0, "r", 1.5),
            Part("WM-MTR", 420.0, "r", 0.8),
            Part("WM-HOSE", 25.0, "im", 2.0),
        ),
    ),
    Category(
        "refrigerator",
        0.15,
        70.0,
        (
            Part("RF-THM", 60.0, "r", 4.0),
            Part("RF-FAN", 90.0, "r", 3.0),
            Part("RF-HTR", 75.0, "r", 2.0),
            Part("RF-SEAL", 110.0, "r", 2.0),
            Part("RF-GAS", 80.0, "r", 2.0, bulk=True),
            Part("RF-PCB", 300.0, "r", 1.2),
            Part("RF-CMP", 900.0, "r", 0.6),
        ),
    ),
    Category(
        "water_heater",
        0.14,
        70.0,
        (
            Part("WH-ANODE", 40.0, "rm", 5.0),
            Part("WH-VLV", 35.0, "ri", 3.0),
            Part("WH-THM", 55.0, "r", 3.0),
            Part("WH-ELM", 120.0, "r", 2.5),
            Part("WH-IGN", 65.0, "r", 1.5),
            Part("WH-PCB", 220.0, "r", 1.0),
        ),
    ),
    Category(
        "tv",
        0.10,
        50.0,
        (
            Part("TV-BRKT", 80.0, "i", 5.0),
            Part("TV-RMT", 40.0, "r", 2.0),
            Part("TV-PSU", 260.0, "r", 3.0),
            Part("TV-BL", 150.0, "r", 2.5),
            Part("TV-MB", 480.0, "r", 1.5),
            Part("TV-PANEL", 1600.0, "r", 0.4),
        ),
    ),
    Category(
        "range_hood",
        0.09,
        90.0,
        (
            Part("RH-LAMP", 20.0, "r", 2.0),
            Part("RH-SW", 45.0, "r", 3.0),
            Part("RH-CAP", 30.0, "r", 2.0),
            Part("RH-FLT", 35.0, "m", 3.0),
            Part("RH-DUCT", 60.0, "i", 4.0, bulk=True),
            Part("RH-MTR", 320.0, "r", 1.5),
        ),
    ),
    Category(
        "dishwasher",
        0.04,
        80.0,
        (
            Part("DW-VLV", 60.0, "r", 3.0),
            Part("DW-PUMP", 180.0, "r", 2.0),
            Part("DW-HTR", 160.0, "r", 1.5),
            Part("DW-PCB", 350.0, "r", 1.0),
        ),
    ),
    Category(
        "water_purifier",
        0.03,
        50.0,
        (
            Part("WP-FLT", 90.0, "m", 5.0, bulk=True),
            Part("WP-VLV", 40.0, "r", 2.0),
            Part("WP-PUMP", 200.0, "r", 1.5),
            Part("WP-MEM", 260.0, "rm", 1.5),
        ),
    ),
)

AC = 0  # index of air_conditioner in CATEGORIES
INSTALL, REPAIR, MAINTENANCE = 0, 1, 2  # indices into SERVICES

PARTS_PROBABILITY: dict[str, float] = {"i": 0.3, "r": 0.62, "m": 0.25}
"""Chance that a job of that service uses parts, when its category has parts for it."""

N_SERVICES = len(SERVICES)
N_CATEGORIES = len(CATEGORIES)
N_SEGMENTS = N_SERVICES * N_CATEGORIES


def segment(service: int, category: int) -> int:
    """Index of the (service, category) segment."""
    return service * N_CATEGORIES + category


@cache
def segment_parts(seg: int) -> tuple[Part, ...]:
    """Parts a job of this segment may use (empty for uninstall and inspection)."""
    service, category = divmod(seg, N_CATEGORIES)
    letter = "irm"[service] if service < 3 else ""
    if not letter:
        return ()
    return tuple(p for p in CATEGORIES[category].parts if letter in p.uses)


@cache
def parts_probability(seg: int) -> float:
    """Chance that a job of this segment uses parts."""
    service = seg // N_CATEGORIES
    if service >= 3 or not segment_parts(seg):
        return 0.0
    return PARTS_PROBABILITY["irm"[service]]


def base_labour(seg: int) -> float:
    """Catalogue labour fee before regional and outlet price levels."""
    service, category = divmod(seg, N_CATEGORIES)
    return CATEGORIES[category].labour_base * SERVICE_LABOUR_FACTOR[service]


def standard_fee(seg: int) -> float:
    """The fee-table maximum labour for a segment (a multiple of 5 CNY)."""
    return float(math.ceil(base_labour(seg) * STANDARD_HEADROOM / 5.0) * 5)


def segment_names(seg: int) -> tuple[str, str]:
    """(service_type, product_category) of a segment."""
    service, category = divmod(seg, N_CATEGORIES)
    return SERVICES[service], CATEGORIES[category].name


PART_PRICE: dict[str, float] = {p.code: p.price for c in CATEGORIES for p in c.parts}


def fee_table() -> list[dict[str, object]]:
    """The standard labour fee table, one row per (service_type, product_category)."""
    rows: list[dict[str, object]] = []
    for seg in range(N_SEGMENTS):
        service, category = segment_names(seg)
        rows.append(
            {
                "service_type": service,
                "product_category": category,
                "code": "labor",
                "max_amount": standard_fee(seg),
            }
        )
    return rows

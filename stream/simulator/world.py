"""The random world the stream comes from: regions and outlets, each outlet with its own
size, job mix, price levels, travel habits and engineer pool.

Everything here is drawn from the seed, so a detector cannot learn constants of the
generator: volumes are lognormal (heavy-tailed), mixes Dirichlet around the catalogue's
shares, price levels regional x outlet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream.simulator.catalogue import (
    CATEGORIES,
    N_CATEGORIES,
    N_SEGMENTS,
    N_SERVICES,
    SERVICE_SHARE,
    base_labour,
    standard_fee,
)

REGION_NAMES: tuple[str, ...] = (
    "华东-上海",
    "华东-杭州",
    "华东-南京",
    "华北-北京",
    "华北-天津",
    "华南-广州",
    "华南-深圳",
    "华中-武汉",
    "西南-成都",
    "西北-西安",
)

FloatArray = npt.NDArray[np.float64]


SERVICE_RADIUS = 2.5
"""How far beyond its median distance an outlet's service area reaches."""


@dataclass(frozen=True, slots=True)
class Region:
    """A sales region with its labour price level."""

    name: str
    price_level: float


@dataclass(slots=True)
class Outlet:
    """One service outlet (服务网点) and the habits that shape its claims."""

    index: int
    outlet_id: str
    region: int
    region_name: str
    volume: float
    """Baseline jobs per day (before season, weekday and patterns)."""
    tariff: list[float]
    """Usual labour claim per segment; never above the fee-table standard."""
    parts_markup: float
    km_median: float
    km_sigma: float
    travel_rate: float | None
    """CNY per km beyond ``free_km``; None if the outlet never claims travel."""
    free_km: float
    engineers: list[str]
    other_prob: float
    other_level: float


@dataclass(slots=True)
class World:
    """Regions, outlets, and the outlet x segment demand mix as arrays."""

    regions: list[Region]
    outlets: list[Outlet]
    volume: FloatArray  # (O,)
    mix: FloatArray  # (O, K) rows sum to 1


def _regions(rng: np.random.Generator, n_outlets: int) -> list[Region]:
    count = min(8, max(1, n_outlets // 4))
    picked = np.sort(rng.choice(len(REGION_NAMES), size=count, replace=False))
    levels = rng.uniform(0.78, 1.12, size=count)
    return [
        Region(REGION_NAMES[int(i)], round(float(lvl), 3))
        for i, lvl in zip(picked, levels, strict=True)
    ]


def _mix(rng: np.random.Generator, n: int) -> FloatArray:
    """Outlet x segment demand shares: category Dirichlet (some specialists) x service."""
    shares = np.array([c.share for c in CATEGORIES])
    cat = rng.dirichlet(shares * 12.0, size=n)
    specialist = rng.random(n) < 0.12
    focus = rng.choice(N_CATEGORIES, size=n, p=shares / shares.sum())
    cat[specialist, focus[specialist]] += 2.0
    cat /= cat.sum(axis=1, keepdims=True)
    svc = rng.dirichlet(np.array(SERVICE_SHARE) * 30.0, size=(n, N_CATEGORIES))  # (O, C, S)
    mix = np.einsum("oc,ocs->osc", cat, svc).reshape(n, N_SERVICES * N_CATEGORIES)
    return np.asarray(mix / mix.sum(axis=1, keepdims=True), dtype=np.float64)


def build_world(rng: np.random.Generator, n_outlets: int, volume_median: float) -> World:
    """Draw regions and outlets."""
    regions = _regions(rng, n_outlets)
    region_of = rng.choice(
        len(regions), size=n_outlets, p=rng.dirichlet(np.full(len(regions), 4.0))
    )
    volume = np.clip(rng.lognormal(np.log(volume_median), 1.0, size=n_outlets), 0.15, 90.0)
    mix = _mix(rng, n_outlets)
    outlet_level = np.clip(rng.lognormal(0.0, 0.14, size=n_outlets), 0.65, 1.25)
    seg_noise = np.clip(rng.lognormal(0.0, 0.03, size=(n_outlets, N_SEGMENTS)), 0.95, 1.05)
    markup = np.clip(rng.lognormal(0.0, 0.05, size=n_outlets), 0.9, 1.12)
    km_median = np.clip(rng.lognormal(np.log(6.0), 0.55, size=n_outlets), 1.5, 40.0)
    km_sigma = rng.uniform(0.2, 0.35, size=n_outlets)
    claims_travel = rng.random(n_outlets) < 0.8
    rate = np.round(rng.uniform(1.2, 3.0, size=n_outlets), 1)
    free_km = rng.choice(np.array([0.0, 3.0, 5.0, 10.0]), size=n_outlets, p=[0.4, 0.2, 0.25, 0.15])
    other_prob = rng.uniform(0.01, 0.05, size=n_outlets)
    other_level = rng.uniform(20.0, 80.0, size=n_outlets)
    base = np.array([base_labour(k) for k in range(N_SEGMENTS)])
    cap = np.array([standard_fee(k) for k in range(N_SEGMENTS)])
    outlets: list[Outlet] = []
    for o in range(n_outlets):
        region = int(region_of[o])
        level = regions[region].price_level * float(outlet_level[o])
        tariff = np.minimum(np.round(base * level * seg_noise[o]), cap)
        pool = int(np.clip(round(float(volume[o]) / 2.5) + 1, 1, 25))
        outlets.append(
            Outlet(
                index=o,
                outlet_id=f"W{o + 1:05d}",
                region=region,
                region_name=regions[region].name,
                volume=float(volume[o]),
                tariff=[float(x) for x in tariff],
                parts_markup=float(markup[o]),
                km_median=float(km_median[o]),
                km_sigma=float(km_sigma[o]),
                travel_rate=float(rate[o]) if claims_travel[o] else None,
                free_km=float(free_km[o]),
                engineers=[f"E{o + 1:04d}-{j + 1:02d}" for j in range(pool)],
                other_prob=float(other_prob[o]),
                other_level=float(other_level[o]),
            )
        )
    return World(regions=regions, outlets=outlets, volume=volume, mix=mix)

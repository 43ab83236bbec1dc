"""The detection state as live objects in dicts: replay's store (nothing to serialise or
flush), and the reference implementation of models/engine.Stores for tests."""

from __future__ import annotations

from collections.abc import Callable

from models.detectors.forest import ForestModel
from models.state import OrderRecord, OutletState, PartitionState


def _single_partition(outlet_id: str) -> int:
    return 0


class MemoryStores:
    """Live state objects in dicts: replay's store (nothing to serialise or flush).

    Orders are kept per partition in order of their last update (a record moves to the
    end when written), so expiring the stale ones reads only the stale ones."""

    def __init__(self) -> None:
        self.outlets: dict[str, OutletState] = {}
        self.orders_by_partition: dict[int, dict[tuple[str, str], OrderRecord]] = {}
        self.partitions: dict[int, PartitionState] = {}
        self.forests: dict[int, ForestModel] = {}
        self.partition_of: Callable[[str], int] = _single_partition

    def _orders(self, outlet_id: str) -> dict[tuple[str, str], OrderRecord]:
        partition = self.partition_of(outlet_id)
        orders = self.orders_by_partition.get(partition)
        if orders is None:
            orders = self.orders_by_partition[partition] = {}
        return orders

    @property
    def orders(self) -> dict[tuple[str, str], OrderRecord]:
        """Every order record, whatever its partition (for inspection)."""
        return {k: v for orders in self.orders_by_partition.values() for k, v in orders.items()}

    def outlet(self, outlet_id: str) -> OutletState | None:
        return self.outlets.get(outlet_id)

    def put_outlet(self, state: OutletState) -> None:
        self.outlets[state.outlet_id] = state

    def order(self, outlet_id: str, order_id: str) -> OrderRecord | None:
        return self._orders(outlet_id).get((outlet_id, order_id))

    def put_order(self, outlet_id: str, order_id: str, record: OrderRecord) -> None:
        orders = self._orders(outlet_id)
        key = (outlet_id, order_id)
        orders.pop(key, None)
        orders[key] = record

    def expire_orders(self, partition: int, before: float) -> int:
        orders = self.orders_by_partition.get(partition, {})
        stale = []
        for key, record in orders.items():
            if record.last_ts >= before:
                break  # in update order: what follows was updated later
            stale.append(key)
        for key in stale:
            del orders[key]
        return len(stale)

    def partition(self, partition: int) -> PartitionState | None:
        return self.partitions.get(partition)

    def put_partition(self, state: PartitionState) -> None:
        self.partitions[state.partition] = state

    def forest(self, partition: int) -> ForestModel | None:
        return self.forests.get(partition)

    def put_forest(self, partition: int, model: ForestModel) -> None:
        self.forests[partition] = model

"""The Pareto front: the choices no other choice beats on both cost and value at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pareto_front(
    items: Sequence[T], cost: Callable[[T], float], value: Callable[[T], float]
) -> list[T]:
    """Items not dominated by another (one with cost <= and value >=, one of them strictly),
    cheapest first; along the front value rises with cost. Exact twins are both kept."""
    ordered = sorted(items, key=lambda item: (cost(item), -value(item)))
    front: list[T] = []
    for item in ordered:
        last = front[-1] if front else None
        beats_last = last is None or value(item) > value(last)
        if beats_last or (cost(item), value(item)) == (cost(last), value(last)):
            front.append(item)
    return front

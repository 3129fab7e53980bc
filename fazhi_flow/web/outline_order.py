"""Sort sections as the outline reads (一、（一）（二）…（十）), not as their labels sort as strings."""
from __future__ import annotations


def outline_key(section) -> tuple:
    """Sort key: the cycle (newest first), then (position, id) of each section from the top down."""
    steps = tuple((s.position, s.id) for s in section.path)
    return (-section.cycle.year, section.cycle_id, steps)


def in_outline_order(sections) -> list:
    return sorted(sections, key=outline_key)

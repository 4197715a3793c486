"""Pure polygon helpers shared by the dataset checks and the inference agreement check.

One implementation of each: the shoelace area (signed and absolute), the orientation test, the
proper-crossing test of two segments and convex clipping (Sutherland-Hodgman). Pure Python,
no numpy or torch; points are any ``(x, y)`` sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]

__all__ = [
    "Point",
    "clip_convex",
    "counter_clockwise",
    "cross",
    "polygon_area",
    "segments_cross",
    "signed_area",
]


def signed_area(points: Sequence[Sequence[float]]) -> float:
    """Signed area of a polygon (shoelace formula): positive when counter-clockwise."""
    total = 0.0
    count = len(points)
    for index in range(count):
        x0, y0 = points[index][0], points[index][1]
        x1, y1 = points[(index + 1) % count][0], points[(index + 1) % count][1]
        total += x0 * y1 - x1 * y0
    return total / 2.0


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """The area of a polygon (absolute shoelace area, in the units of its points)."""
    return abs(signed_area(points))


def cross(o: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float:
    """> 0 when ``b`` lies left of the directed edge ``o`` → ``a`` (0 when collinear)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def segments_cross(
    p1: Sequence[float], p2: Sequence[float], q1: Sequence[float], q2: Sequence[float]
) -> bool:
    """Whether two segments cross at a point inside both (touching ends do not count)."""
    d1, d2 = cross(q1, q2, p1), cross(q1, q2, p2)
    d3, d4 = cross(p1, p2, q1), cross(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def counter_clockwise(points: Sequence[Sequence[float]]) -> list[Point]:
    """The polygon's points as tuples, reversed when they run clockwise."""
    ring = [(float(p[0]), float(p[1])) for p in points]
    return ring if signed_area(ring) >= 0 else ring[::-1]


def _intersection(p: Point, q: Point, a: Point, b: Point) -> Point:
    """Where segment ``p``-``q`` crosses the line through ``a`` and ``b``."""
    dp, dq = cross(a, b, p), cross(a, b, q)
    t = dp / (dp - dq) if dp != dq else 0.0
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


def clip_convex(subject: Sequence[Sequence[float]], clip: Sequence[Sequence[float]]) -> list[Point]:
    """The intersection polygon of two convex polygons (Sutherland-Hodgman clipping).

    Either orientation is accepted; the result is counter-clockwise (empty when they do not
    overlap).
    """
    output = counter_clockwise(subject)
    window = counter_clockwise(clip)
    for index in range(len(window)):
        if not output:
            break
        a, b = window[index], window[(index + 1) % len(window)]
        points, output = output, []
        for k in range(len(points)):
            current, previous = points[k], points[k - 1]
            inside_now = cross(a, b, current) >= 0
            inside_before = cross(a, b, previous) >= 0
            if inside_now:
                if not inside_before:
                    output.append(_intersection(previous, current, a, b))
                output.append(current)
            elif inside_before:
                output.append(_intersection(previous, current, a, b))
    return output

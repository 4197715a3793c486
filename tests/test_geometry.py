"""The one set of polygon helpers (jupyter_yolo.geometry) the datasets and inference share."""

from __future__ import annotations

import pytest

from jupyter_yolo import geometry
from jupyter_yolo.inference import geometry as inference_geometry


def test_areas_orientation_and_crossings() -> None:
    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    assert geometry.signed_area(square) == 4.0
    assert geometry.signed_area(square[::-1]) == -4.0
    assert geometry.polygon_area(square[::-1]) == 4.0
    assert geometry.polygon_area([(0, 0), (1, 1)]) == 0.0
    assert geometry.counter_clockwise(square[::-1]) == square
    assert geometry.segments_cross((0, 0), (2, 2), (0, 2), (2, 0))
    assert not geometry.segments_cross((0, 0), (1, 1), (1, 1), (2, 0))  # touching ends only
    bowtie = [(0, 0), (2, 2), (2, 0), (0, 2)]
    assert geometry.segments_cross(bowtie[0], bowtie[1], bowtie[2], bowtie[3])
    shifted = [(x + 1, y + 1) for x, y in square]
    assert geometry.polygon_area(geometry.clip_convex(square, shifted)) == pytest.approx(1.0)


def test_inference_uses_the_shared_helpers() -> None:
    """The agreement check's clipping and area are the shared ones, not a second copy."""
    assert inference_geometry.clip_convex is geometry.clip_convex
    square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    assert inference_geometry.polygon_area(square[::-1]) == geometry.signed_area(square[::-1])
    source = inference_geometry.__file__
    with open(source, encoding="utf-8") as handle:
        text = handle.read()
    assert "x0 * y1 - x1 * y0" not in text  # no shoelace of its own

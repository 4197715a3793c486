"""Datasets of every YOLO task, with no tornado imports.

Import and conversion: ``archive`` (safe extraction), ``layouts`` (YOLO layout, entry point
``normalise``), ``coco`` / ``coco_tasks`` (COCO boxes, polygons, RLE, keypoints), ``voc``,
``dota`` (oriented boxes), ``classfolders`` (classify). The task: ``taskdetect`` (told from the
contents or forced). Checks: ``validate`` (the report) over ``datayaml``, ``labels`` (label
lines per task), ``pixelmaps`` (semantic masks, depth maps), ``taskkeys``, ``stats``,
``problems``; ``reportcache`` (report.json, meta.json). Serving: ``store`` (the DatasetStore the
handlers call), ``operations`` (uploads in flight), ``samples`` (previews), ``builtin`` and the
``synthetic*`` generators.
"""

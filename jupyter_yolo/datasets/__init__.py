"""Datasets, with no tornado imports.

``archive`` (safe extraction), ``layouts`` (YOLO / COCO / VOC to the canonical layout),
``validate`` (the report), ``store`` (the DatasetStore the handlers call) and ``synthetic`` (the
built-in shapes generator).
"""

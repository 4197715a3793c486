"""Tornado handlers for the ``/yolo/`` REST API: thin wrappers over the core."""

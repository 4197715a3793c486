"""Benchmarks: figures measured side by side in one run (``python -m bench``, see ``__main__``).

Sections: ``training`` (job versus plain ``yolo train``), ``inference`` (backends and ``auto``),
``live`` (trainer callback to REST, REST latency under load) and ``footprint`` (``startup``:
server start time and memory with and without the extension); ``common`` holds what they share
and ``report`` the table and the JSON. ``upload`` and ``live_widget`` measure one thing each.
"""

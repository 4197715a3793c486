"""The task a weights file was trained for, read without torch, ultralytics or unpickling.

The reading itself (bounded, never raising) is :mod:`jupyter_yolo.weights_meta`, shared with the
runner; this module caches its answers for the server and falls back to the file name when the
file records nothing readable (``yolo11n-pose.pt`` → pose).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..contract.tasks import task_from_name
from ..weights_meta import MAX_OPCODES, MAX_PICKLE_BYTES, task_in_file, task_in_pickle

CACHE_SIZE = 512

__all__ = ["MAX_OPCODES", "MAX_PICKLE_BYTES", "task_in_pickle", "task_of_weights"]

_cache: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_cache_lock = threading.Lock()


def task_of_weights(path: Path) -> str:
    """The task of a weights file or exported model folder; its name decides when unreadable.

    Never raises: a damaged or hostile file is answered by its name. Results are cached by
    (path, size, mtime), so listing a weights folder reads each file once.
    """
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return task_from_name(path.name)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    task = task_in_file(path) or task_from_name(path.name)
    with _cache_lock:
        _cache[key] = task
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return task

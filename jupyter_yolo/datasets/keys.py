"""Which data.yaml keys ultralytics 8.4 needs for training, and which make it run code.

Plain constants, importing nothing of the package, so the dataset validator and the job side
(the job's data.yaml copy, resume re-validation) share one definition.

From ``ultralytics/data/utils.py`` (``check_det_dataset``) and the datasets and trainers that
read the returned dict:

* ``download``: when the ``val`` images are missing, a value starting with ``http`` and ending in
  ``.zip`` is downloaded, one starting with ``bash `` is run with ``os.system``, and anything else
  is run with ``exec`` as Python. Never acceptable in a workspace dataset.
"""

from __future__ import annotations

DATA_YAML_KEYS: frozenset[str] = frozenset(
    {
        "path",  # dataset root; relative train/val/test resolve against it
        "train",
        "val",
        "test",
        "names",  # class id -> name
        "nc",  # number of classes (ultralytics recomputes it from names)
        "kpt_shape",  # pose: [keypoints, dims]
        "flip_idx",  # pose: left/right keypoint pairs for flip augmentation
        "kpt_names",  # pose: keypoint names (8.4)
        "channels",  # image channels (default 3)
    }
)
"""Keys a job's copy of data.yaml keeps: everything ultralytics needs to train, nothing more."""

FORBIDDEN_DATA_KEYS: frozenset[str] = frozenset({"download"})
"""Keys that make ultralytics fetch files or run code; a data.yaml holding one is an error."""

__all__ = ["DATA_YAML_KEYS", "FORBIDDEN_DATA_KEYS"]

"""Which data.yaml keys ultralytics 8.4 needs for training, and which make it fetch or run code.

Plain constants, importing nothing of the package, so the dataset validator and the job side
(the job's data.yaml copy, resume re-validation) share one definition.

Read from ultralytics 8.4.190 (``ultralytics/data/utils.py`` ``check_det_dataset`` and the
trainers, validators and datasets that read the dict it returns):

* ``download``: when the images of ``val`` (or the split asked for) are missing, a value that
  starts with ``http`` and ends like an archive is downloaded, one that starts with ``bash `` is
  run as a command, and anything else is run with ``exec`` as Python with the data dict in scope.
  It is the only data.yaml key that fetches or runs something; ``check_cls_dataset`` takes a
  folder, not a yaml. (ultralytics also downloads a font when ``names`` are not ASCII; that is
  governed by the jobs' offline settings, not by a key.)
* ``validation`` is renamed to ``val`` and ``minival`` is resolved like a split, but training
  uses neither when ``val`` is given, so a job's copy does without them.
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
        "channels",  # image channels (default 3)
        "kpt_shape",  # pose: [keypoints, 2 or 3]
        "flip_idx",  # pose: keypoint order after a horizontal flip
        "kpt_names",  # pose: keypoint names
        "kpt_oks_sigmas",  # pose: per-keypoint OKS sigmas for validation
        "masks_dir",  # semantic: folder of PNG class maps beside images/ (default masks)
        "label_mapping",  # semantic: raw mask value -> class id
        "depth_scale",  # depth: PNG value per metre (default 1000)
    }
)
"""Keys a job's copy of data.yaml keeps: what ultralytics needs to train, nothing more."""

FORBIDDEN_DATA_KEYS: frozenset[str] = frozenset({"download"})
"""Keys that make ultralytics fetch files or run code; a data.yaml holding one is an error."""

__all__ = ["DATA_YAML_KEYS", "FORBIDDEN_DATA_KEYS"]

"""Datasets: the built-in synthetic shapes generator (``jupyter_yolo.datasets.synthetic``)."""

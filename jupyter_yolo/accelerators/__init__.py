"""Accelerator probing: what hardware this container has and what to use it for."""

"""The prediction panel's gallery: several images at once, click one to see it large.

Each tile is a thumbnail (with the predictions and, when asked, the ground truth drawn into it
by :mod:`.labels_draw`) over a button naming the image and what was found; the button opens
the image in the panel's large figure. Tiles are plain ipywidgets (an ``Image`` holds the PNG
bytes), so they render again from the kernel's state after a browser reload.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence

import ipywidgets as widgets

MAX_TILES = 16
"""At most this many images in the gallery (the rest stay in the image list)."""


class Gallery(widgets.GridBox):  # type: ignore[misc]
    """A grid of thumbnails; ``on_pick(path)`` runs when a tile's button is clicked."""

    def __init__(self, on_pick: Callable[[str], None], columns: int = 4) -> None:
        super().__init__(
            layout=widgets.Layout(
                grid_template_columns=f"repeat({columns}, 184px)",
                grid_gap="6px",
                margin="4px 0",
            )
        )
        self.add_class("yolo-gallery")
        self.on_pick = on_pick
        self.tiles: dict[str, tuple[widgets.Image, widgets.Button]] = {}
        self.captions: dict[str, str] = {}

    def show(self, paths: Sequence[str]) -> None:
        """Lay out tiles for ``paths`` (at most :data:`MAX_TILES`), keeping known pictures."""
        kept = list(paths)[:MAX_TILES]
        for path in kept:
            if path not in self.tiles:
                image = widgets.Image(format="png", layout=widgets.Layout(width="176px"))
                button = widgets.Button(
                    description=posixpath.basename(path)[:24],
                    tooltip=f"open {path}",
                    layout=widgets.Layout(width="176px"),
                )
                button.add_class("yolo-gallery-open")
                button.on_click(lambda _, chosen=path: self.on_pick(chosen))
                self.tiles[path] = (image, button)
        for path in [p for p in self.tiles if p not in kept]:
            image, button = self.tiles.pop(path)
            image.close()
            button.close()
            self.captions.pop(path, None)
        self.children = [
            widgets.VBox(list(self.tiles[p]), layout=widgets.Layout(width="180px")) for p in kept
        ]

    @property
    def paths(self) -> list[str]:
        """The images in the gallery, in order."""
        return list(self.tiles)

    def set_tile(self, path: str, png: bytes | None, caption: str | None = None) -> None:
        """Put ``png`` (a drawn thumbnail) and ``caption`` on ``path``'s tile, if shown."""
        tile = self.tiles.get(path)
        if tile is None:
            return
        image, button = tile
        if png is not None:
            image.value = png
        if caption is not None:
            self.captions[path] = caption
            button.description = caption[:28]
            button.tooltip = f"open {path}: {caption}"

    def mark(self, chosen: str | None) -> None:
        """Highlight the tile shown large."""
        for path, (_, button) in self.tiles.items():
            button.button_style = "info" if path == chosen else ""

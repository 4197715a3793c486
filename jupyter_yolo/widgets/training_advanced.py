"""The training form's Advanced section: the common ultralytics training arguments, folded.

Optimizer, learning rate schedule, early stopping, augmentation strengths, seed, cache and the
weights to start from. A value is sent only when it differs from ultralytics' own default (or the
dataset's defaults set it), so a request stays as short as what the person chose; the server's job
schema checks every value (types and ranges) and answers a 400 that names a bad one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from .training_form import weights_choices

OPTIMIZERS = ("auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp")
FROM_SCRATCH = ""
"""The pretrained picker's value for no starting weights (the architecture's random init)."""


@dataclass(frozen=True)
class Field:
    """One control: the ultralytics argument, its default there, range, step and description."""

    key: str
    default: Any
    low: float = 0.0
    high: float = 1.0
    step: float = 0.001
    label: str = ""


#: The controls in order, with ultralytics 8.4's defaults (``ultralytics/cfg/default.yaml``) and
#: the ranges ``jobs/schema.py`` accepts.
FIELDS: tuple[Field, ...] = (
    Field("optimizer", "auto", label="optimizer"),
    Field("lr0", 0.01, 1e-6, 1.0, 0.0005, "initial LR (lr0)"),
    Field("lrf", 0.01, 1e-6, 1.0, 0.005, "final LR factor (lrf)"),
    Field("momentum", 0.937, 0.0, 1.0, 0.001, "momentum"),
    Field("weight_decay", 0.0005, 0.0, 1.0, 0.0001, "weight decay"),
    Field("warmup_epochs", 3.0, 0.0, 100.0, 0.5, "warmup epochs"),
    Field("patience", 100, 0, 10000, 1, "patience (epochs)"),
    Field("close_mosaic", 10, 0, 10000, 1, "close mosaic (last epochs)"),
    Field("cos_lr", False, label="cosine LR schedule"),
    Field("mosaic", 1.0, 0.0, 1.0, 0.05, "mosaic"),
    Field("fliplr", 0.5, 0.0, 1.0, 0.05, "flip left-right"),
    Field("hsv_h", 0.015, 0.0, 1.0, 0.005, "hue (hsv_h)"),
    Field("hsv_s", 0.7, 0.0, 1.0, 0.05, "saturation (hsv_s)"),
    Field("hsv_v", 0.4, 0.0, 1.0, 0.05, "brightness (hsv_v)"),
    Field("seed", 0, 0, 2**31 - 1, 1, "seed"),
    Field("cache", False, label="cache images in RAM"),
)
ULTRALYTICS_DEFAULTS: dict[str, Any] = {f.key: f.default for f in FIELDS}
_STYLE = {"description_width": "150px"}


def _control(field: Field) -> widgets.Widget:
    layout = widgets.Layout(width="270px")
    if isinstance(field.default, bool):
        return widgets.Checkbox(value=field.default, description=field.label, indent=False)
    if field.key == "optimizer":
        return widgets.Dropdown(
            options=OPTIMIZERS, value="auto", description="optimizer", style=_STYLE, layout=layout
        )
    if isinstance(field.default, int):
        return widgets.BoundedIntText(
            value=field.default,
            min=int(field.low),
            max=int(field.high),
            description=field.label,
            style=_STYLE,
            layout=layout,
        )
    return widgets.BoundedFloatText(
        value=field.default,
        min=field.low,
        max=field.high,
        step=field.step,
        description=field.label,
        style=_STYLE,
        layout=layout,
    )


class AdvancedSection(widgets.Accordion):  # type: ignore[misc]
    """An accordion (folded) with one control per :data:`FIELDS` entry and a pretrained picker."""

    def __init__(self) -> None:
        self.controls: dict[str, widgets.Widget] = {f.key: _control(f) for f in FIELDS}
        self.pretrained_w = widgets.Dropdown(
            options=[("none (from scratch)", FROM_SCRATCH)],
            value=FROM_SCRATCH,
            description="pretrained weights",
            style=_STYLE,
            layout=widgets.Layout(width="560px"),
        )
        # arguments with no control that the dataset's defaults set (nbs, erasing ...)
        self.carried: dict[str, Any] = {}
        items = list(self.controls.values())
        rows = [widgets.HBox(items[i : i + 3]) for i in range(0, len(items), 3)]
        body = widgets.VBox([self.pretrained_w, *rows])
        super().__init__(children=[body], selected_index=None)
        self.set_title(0, "Advanced: optimizer, learning rate, augmentation, pretrained weights")
        self.add_class("yolo-training-advanced")

    def set_defaults(self, defaults: dict[str, Any]) -> None:
        """Show ``defaults`` (a :func:`train_defaults` request): its keys, else ultralytics'."""
        for key, control in self.controls.items():
            control.value = defaults.get(key, ULTRALYTICS_DEFAULTS[key])
        skip = {"model", "data", "epochs", "imgsz", "batch", "device", "amp", "workers"}
        self.carried = {k: v for k, v in defaults.items() if k not in skip | set(self.controls)}

    def set_pretrained_options(self, models: dict[str, Any], task: str | None) -> None:
        """Offer the weights of ``task`` (best run first) as starting points; keep the choice."""
        options, _ = weights_choices(models, task)
        current = self.pretrained_w.value
        choices = [("none (from scratch)", FROM_SCRATCH), *options]
        self.pretrained_w.options = choices
        values = [v for _, v in choices]
        self.pretrained_w.value = current if current in values else FROM_SCRATCH

    def values(self) -> dict[str, Any]:
        """The arguments to send: what differs from ultralytics' defaults, and the carried ones."""
        out: dict[str, Any] = dict(self.carried)
        for key, control in self.controls.items():
            value = control.value
            if value != ULTRALYTICS_DEFAULTS[key] or key in out:
                out[key] = value
        if self.pretrained_w.value:
            out["pretrained"] = self.pretrained_w.value
        return out

    def fill(self, request: dict[str, Any]) -> None:
        """Show a followed job's request (missing keys: ultralytics' defaults)."""
        self.set_defaults(request)
        pretrained = request.get("pretrained")
        if isinstance(pretrained, str) and pretrained:
            values = [v for _, v in self.pretrained_w.options]
            if pretrained not in values:
                self.pretrained_w.options = [*self.pretrained_w.options, (pretrained, pretrained)]
            self.pretrained_w.value = pretrained
        else:
            self.pretrained_w.value = FROM_SCRATCH

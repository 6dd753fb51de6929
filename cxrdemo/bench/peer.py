"""The peer pipeline of ``python -m cxrdemo bench``: the same job done the way a typical Gradio Grad-CAM Space does it.

What most Grad-CAM demos on Hugging Face run per request, on the SAME network, weights and image files as cxrdemo:

1. ``PIL.Image.open(path).convert("RGB")`` and torchvision transforms (``Resize``, ``ToTensor``, ``Normalize`` with
   the model's own statistics; ``Grayscale`` first for a 1-channel model);
2. a forward pass under ``torch.no_grad()`` for the probabilities and boxes;
3. pytorch-grad-cam's ``GradCAM`` on the full model through a single-output wrapper (the network returns logits and
   boxes; grad-cam wants one tensor), created per request in a ``with`` block: its own forward and a full backward
   (``loss.backward``, every parameter's gradient) for the top-1 class (``ClassifierOutputTarget``);
4. ``show_cam_on_image`` on the film resized for display;
5. a matplotlib bar chart of every class' probability with its decision threshold (``savefig`` to PNG);
6. the predicted boxes and the ground-truth boxes (NIH's list, looked up by file name) drawn with ``PIL.ImageDraw``,
   with the box IoU as text;
7. the four panels encoded as PNG (Pillow's defaults), in memory.

The panels have the size of cxrdemo's (``side``: the bench's ``--panel-size``), so neither side draws more pixels
than the other. The peer is set up once (imports, transforms, font, the NIH box index): only per-request work is
timed. Research demo, not a diagnostic device.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Stages of the peer pipeline, in order (``peer_stages_ms``).
PEER_STAGES = ("decode", "preprocess", "forward", "gradcam", "overlay", "chart", "boxes", "encode")
#: How the app encodes the panels it hands out (docs/api.md): film panels JPEG q95 without chroma subsampling.
APP_PANEL_FORMATS = {"prediction": "JPEG", "comparison": "JPEG", "probabilities": "PNG", "cam": "JPEG"}
#: Longest side of the panels (cxrdemo's ``render_panels`` default).
PANEL_SIDE = 768


def encode_as_app(panels) -> int:
    """Encode the four panels as the app hands them out (:data:`APP_PANEL_FORMATS`), in memory; total bytes."""
    from ..render.palette import exact_palette

    total = 0
    for name, fmt in APP_PANEL_FORMATS.items():
        buffer = io.BytesIO()
        image = getattr(panels, name)
        if fmt == "JPEG":
            image.save(buffer, format=fmt, quality=95, subsampling=0)
        else:  # as cxrdemo.render.files.write_panels: a lossless palette PNG when the panel has <= 256 colours
            exact_palette(image).save(buffer, format=fmt, compress_level=1)
        total += buffer.tell()
    return total


class PeerPipeline:
    """The idiomatic pipeline (module docstring) on ``predictor``'s model; call it with an image path."""

    def __init__(self, predictor: Any, side: int = PANEL_SIDE) -> None:
        import matplotlib

        matplotlib.use("Agg")  # a server has no display
        import matplotlib.pyplot as plt
        import torch
        from PIL import ImageFont
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.image import show_cam_on_image
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        from torchvision import transforms as T

        self.plt, self.torch = plt, torch
        self.GradCAM, self.ClassifierOutputTarget, self.show_cam_on_image = GradCAM, ClassifierOutputTarget, show_cam_on_image
        self.model = predictor.model
        self.config = cfg = predictor.config
        self.device = predictor.device
        self.side = side
        steps = [T.Grayscale(1)] if cfg.channels == 1 else []
        self.transform = T.Compose(
            steps + [T.Resize((cfg.input_size, cfg.input_size)), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)]
        )

        class LogitsOnly(torch.nn.Module):
            """grad-cam needs a model with one output: the class logits."""

            def __init__(self, model: torch.nn.Module) -> None:
                super().__init__()
                self.model = model

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.model(x).logits

        self.wrapper = LogitsOnly(self.model).eval()
        self.target_layers = [self.model.cam_layer]
        self.font = ImageFont.load_default(size=max(12, side // 48))

    # --------------------------------------------------------------------------------------------- one image
    def __call__(self, path: str | Path) -> tuple[dict[str, float], dict[str, Any]]:
        """Run the whole peer pipeline on one file; ``(stage timings in ms, outputs)``.

        ``outputs``: ``probabilities`` (numpy), ``top`` (class index), ``pngs`` (the four PNG byte strings).
        """
        from PIL import Image, ImageDraw

        torch, cfg = self.torch, self.config
        t: dict[str, float] = {}
        start = time.perf_counter()
        img = Image.open(path).convert("RGB")
        t["decode"] = time.perf_counter()
        x = self.transform(img).unsqueeze(0).to(self.device)
        t["preprocess"] = time.perf_counter()
        with torch.no_grad():
            out = self.model(x)
            logits = out.logits[0]
            probs = (torch.softmax(logits, 0) if cfg.class_mode == "softmax" else torch.sigmoid(logits)).cpu().numpy()
            boxes = out.boxes[0].cpu().numpy()
        top = int(np.argmax(probs))
        t["forward"] = time.perf_counter()
        with self.GradCAM(model=self.wrapper, target_layers=self.target_layers) as cam:
            grayscale_cam = cam(input_tensor=x, targets=[self.ClassifierOutputTarget(top)])[0]
        t["gradcam"] = time.perf_counter()

        width, height = img.size
        factor = self.side / max(width, height)
        dw, dh = max(1, round(width * factor)), max(1, round(height * factor))
        display = img.resize((dw, dh))
        rgb = np.asarray(display, dtype=np.float32) / 255.0
        heat = np.asarray(Image.fromarray(grayscale_cam).resize((dw, dh), Image.Resampling.BILINEAR))
        overlay = Image.fromarray(self.show_cam_on_image(rgb, heat, use_rgb=True))
        t["overlay"] = time.perf_counter()

        chart = self._chart(probs)
        t["chart"] = time.perf_counter()

        predicted, comparison = self._boxes(display, probs, boxes, top, path, width, height, ImageDraw)
        t["boxes"] = time.perf_counter()

        pngs = []
        for panel in (predicted, comparison, overlay):
            buffer = io.BytesIO()
            panel.save(buffer, format="PNG")
            pngs.append(buffer.getvalue())
        pngs.insert(2, chart)
        t["encode"] = time.perf_counter()

        timings, previous = {}, start
        for stage in PEER_STAGES:
            timings[stage] = (t[stage] - previous) * 1e3
            previous = t[stage]
        return timings, {"probabilities": probs, "top": top, "pngs": pngs}

    def _chart(self, probs: np.ndarray) -> bytes:
        """A horizontal bar chart of every class with its threshold, as PNG bytes (matplotlib, ``savefig``)."""
        plt, cfg = self.plt, self.config
        order = np.argsort(probs)
        labels = [cfg.classes[i] for i in order]
        fig, ax = plt.subplots(figsize=(self.side / 100, self.side / 100), dpi=100)
        colours = ["tab:red" if probs[i] >= cfg.threshold(cfg.classes[i]) else "tab:blue" for i in order]
        ax.barh(labels, probs[order], color=colours)
        ax.scatter([cfg.threshold(c) for c in labels], range(len(labels)), marker="|", s=200, color="black", label="threshold")
        for y, i in enumerate(order):
            ax.text(min(probs[i] + 0.01, 0.9), y, f"{probs[i]:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
        ax.set_title("Predicted probabilities")
        ax.legend(loc="lower right")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()

    def _boxes(self, display, probs, boxes, top, path, width, height, ImageDraw):
        """(a) the predicted boxes; (b) the ground truth against the predicted box of its class, with the IoU."""
        from ..datasets.truth import nih_boxes

        cfg = self.config
        sx, sy = display.width / width, display.height / height
        if cfg.box_mode == "single":
            predicted = {cfg.classes[top]: (float(probs[top]), boxes[0])}
        else:
            predicted = {c: (float(probs[cfg.classes.index(c)]), boxes[k]) for k, c in enumerate(cfg.box_classes)}
        in_pixels = {c: (p, [b[0] * width, b[1] * height, b[2] * width, b[3] * height]) for c, (p, b) in predicted.items()}

        def scaled(xyxy):
            return [xyxy[0] * sx, xyxy[1] * sy, xyxy[2] * sx, xyxy[3] * sy]

        panel_a = display.copy()
        draw = ImageDraw.Draw(panel_a)
        shown = [c for c, (p, _) in in_pixels.items() if p >= cfg.threshold(c)][:3] or [max(in_pixels, key=lambda c: in_pixels[c][0])]
        for label in shown:
            score, xyxy = in_pixels[label]
            r = scaled(xyxy)
            draw.rectangle(r, outline=(255, 64, 64), width=3)
            draw.text((r[0] + 4, r[1] + 4), f"{label} {score:.2f}", fill=(255, 64, 64), font=self.font)

        panel_b = display.copy()
        draw = ImageDraw.Draw(panel_b)
        lines = []
        for gt in nih_boxes(Path(path).name, width, height):
            g = [gt.x1, gt.y1, gt.x2, gt.y2]
            draw.rectangle(scaled(g), outline=(64, 220, 64), width=3)
            draw.text((g[0] * sx + 4, g[1] * sy + 4), f"GT {gt.label}", fill=(64, 220, 64), font=self.font)
            pair = in_pixels.get(gt.label) or (in_pixels.get(cfg.classes[top]) if cfg.box_mode == "single" else None)
            if pair is not None:
                draw.rectangle(scaled(pair[1]), outline=(255, 64, 64), width=3)
                lines.append(f"{gt.label}: IoU {_iou(g, pair[1]):.2f}")
        draw.text((8, 8), "\n".join(lines) or "no ground truth", fill=(255, 255, 0), font=self.font)
        return panel_a, panel_b


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

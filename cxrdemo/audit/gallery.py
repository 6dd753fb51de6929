"""``gallery.html``: every boxed case of an audit on one static page, worst first, sortable by any metric.

One row per ground-truth box and CAM method: a picture of two panels (left: the film with the ground-truth box,
the model's box and the CAM box; right: the CAM over the film with the ground-truth box) and the case's numbers.
The page is plain HTML with a few lines of inline JavaScript (no server, no framework, no network): click a column
header or pick a metric to sort, filter by method or class.

The pictures are JPEGs written at run time into ``OUT/gallery/`` beside the page, from the decoded radiographs:
they are image data and belong to the user's output folder only (never to a repository).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..cams import is_class_agnostic, method_name
from .result import AuditResult, CaseRow
from .maps import MAP_METRICS, METRIC_NAMES

#: Box colours (RGB) shared by the pictures and the page's legend.
GT_COLOUR = (46, 204, 64)
MODEL_COLOUR = (0, 153, 255)
CAM_COLOUR = (255, 133, 27)
#: The gallery's columns: key, header, and whether higher is better (the default sort puts the worst first).
COLUMNS: tuple[tuple[str, str], ...] = tuple((k, METRIC_NAMES[k]) for k in ("probability", "model_iou", "cam_iou", *MAP_METRICS))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.replace("++", "pp")).strip("-") or "x"


def _jet(values: np.ndarray) -> np.ndarray:
    """``(h, w)`` values in [0, 1] -> ``(h, w, 3)`` uint8 RGB (OpenCV's JET colormap, as the app draws CAMs)."""
    import cv2

    u8 = np.clip(np.nan_to_num(values) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_JET)[..., ::-1]


def _rect(draw, box: Sequence[float] | None, sx: float, sy: float, colour: tuple[int, int, int], width: int, dashed: bool = False) -> None:
    if box is None:
        return
    x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    if not dashed:
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        return
    step = 7
    for a, b, horizontal, fixed in ((x1, x2, True, y1), (x1, x2, True, y2), (y1, y2, False, x1), (y1, y2, False, x2)):
        pos = a
        while pos < b:
            end = min(pos + step, b)
            line = [pos, fixed, end, fixed] if horizontal else [fixed, pos, fixed, end]
            draw.line(line, fill=colour, width=width)
            pos += 2 * step


def write_case_thumbnail(folder: str | Path, film: np.ndarray, heatmap: np.ndarray, case: CaseRow) -> str:
    """Write the case's two-panel JPEG into ``folder``; returns its path relative to ``folder``'s parent.

    Args:
        folder: the gallery picture folder (``OUT/gallery``).
        film: the film's thumbnail, ``(h, w)`` uint8, the whole image (any size; boxes are scaled to it).
        heatmap: the CAM of the case's class, model frame (square), values in [0, 1].
        case: the case (boxes in the original image's pixels).
    """
    import cv2
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = film.shape[:2]
    sx, sy = w / case.width, h / case.height
    grey = np.repeat(film[..., None], 3, axis=2).astype(np.float32)
    cam = cv2.resize(np.asarray(heatmap, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    overlay = (0.55 * grey + 0.45 * _jet(cam).astype(np.float32)).clip(0, 255).astype(np.uint8)
    left = Image.fromarray(grey.astype(np.uint8))
    right = Image.fromarray(overlay)
    lw = max(2, round(w / 160))
    d = ImageDraw.Draw(left)
    _rect(d, case.cam_box, sx, sy, CAM_COLOUR, lw)
    _rect(d, case.box, sx, sy, GT_COLOUR, lw)
    _rect(d, case.model_box, sx, sy, MODEL_COLOUR, lw, dashed=True)  # dashed on top: visible over an equal GT box
    _rect(ImageDraw.Draw(right), case.box, sx, sy, GT_COLOUR, lw)
    both = Image.new("RGB", (2 * w + 4, h), (255, 255, 255))
    both.paste(left, (0, 0))
    both.paste(right, (w + 4, 0))
    name = f"{_safe(Path(case.image).stem)}_{case.box_index}_{_safe(case.label)}_{_safe(case.method)}.jpg"
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    both.save(tmp, format="JPEG", quality=85)
    os.replace(tmp, folder / name)
    return f"{folder.name}/{name}"


def _value(case: CaseRow, key: str) -> float | None:
    if key in ("probability", "model_iou", "cam_iou"):
        v = getattr(case, key)
    else:
        v = case.metrics.get(key)
    return None if v is None or not np.isfinite(v) else float(v)


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:20px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 6px}p{margin:4px 0;font-size:14px}
.bar{display:flex;gap:18px;align-items:center;flex-wrap:wrap;margin:12px 0;padding:10px;background:#fff;border:1px solid #ddd;border-radius:6px;font-size:14px}
.key{display:inline-block;width:22px;height:0;border-top:3px solid;vertical-align:middle;margin-right:4px}
.dash{border-top-style:dashed}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e3e3e3;padding:5px 6px;text-align:right;vertical-align:middle}
th{position:sticky;top:0;background:#f0f0f0;cursor:pointer;user-select:none;max-width:82px;line-height:1.25}
th.sorted::after{content:attr(data-dir);margin-left:4px;color:#0072B2}
td.l,th.l{text-align:left}td img{display:block;height:150px;border-radius:3px}
td.case{max-width:150px;overflow-wrap:anywhere}
td.bad{background:#fde8e4}td.good{background:#e6f5e9}
.muted{color:#666}
"""

_SCRIPT = """
const rows=[...document.querySelectorAll('tbody tr')];const tbody=document.querySelector('tbody');
const sortSel=document.getElementById('sort'),dirSel=document.getElementById('dir');
const mSel=document.getElementById('method'),cSel=document.getElementById('cls');
function val(r,k){const v=r.dataset[k];return v===''?NaN:(isNaN(+v)?v:+v);}
function apply(){const k=sortSel.value,asc=dirSel.value==='asc';
 rows.sort((a,b)=>{const x=val(a,k),y=val(b,k);const nx=Number.isNaN(x),ny=Number.isNaN(y);
  if(nx||ny)return nx-ny;return (x<y?-1:x>y?1:0)*(asc?1:-1);});
 for(const r of rows){const show=(mSel.value===''||r.dataset.method===mSel.value)&&(cSel.value===''||r.dataset.label===cSel.value);
  r.style.display=show?'':'none';tbody.appendChild(r);}
 document.querySelectorAll('th').forEach(th=>{th.classList.toggle('sorted',th.dataset.key===k);th.dataset.dir=asc?'\\u25B2':'\\u25BC';});
 document.getElementById('shown').textContent=rows.filter(r=>r.style.display!=='none').length;}
document.querySelectorAll('th[data-key]').forEach(th=>th.addEventListener('click',()=>{
 if(sortSel.value===th.dataset.key){dirSel.value=dirSel.value==='asc'?'desc':'asc';}else{sortSel.value=th.dataset.key;dirSel.value='asc';}apply();}));
[sortSel,dirSel,mSel,cSel].forEach(s=>s.addEventListener('change',apply));apply();
"""


def gallery_html(result: AuditResult, title: str = "cxrdemo audit: boxed cases") -> str:
    """The page's HTML (pictures referenced by each case's ``thumbnail`` path)."""
    cases = result.cases
    methods = list(result.methods)
    labels = sorted({c.label for c in cases})
    esc = html.escape
    model = result.evaluation.model
    agnostic = [method_name(m) for m in methods if is_class_agnostic(m)]
    head = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{len({c.image for c in cases})} images, {len(cases) // max(1, len(methods))} ground-truth boxes, "
        f"{len(methods)} CAM method(s): {esc(', '.join(method_name(m) for m in methods))}. Model: "
        f"<code>{esc(str(model.get('architecture')))}</code> from <code>{esc(str(model.get('source')))}</code>.</p>",
        "<p class='muted'>Every metric: higher is better; the page opens sorted worst first. Cells: red &lt; 0.1, "
        "green &ge; 0.5. CAM box: the map &ge; "
        f"{result.evaluation.cam_threshold}/255, largest region. Research use only, not for diagnosis.</p>",
    ]  # fmt: skip
    if agnostic:
        head.append(f"<p class='muted'>{esc(', '.join(agnostic))}: class-agnostic map (the same for every class).</p>")
    key = lambda colour, dashed=False: (  # noqa: E731
        f"<span class='key{' dash' if dashed else ''}' style='border-color:rgb{colour}'></span>"
    )
    opts = "".join(f"<option value='{k}'{' selected' if k == 'energy_in_box' else ''}>{esc(t)}</option>" for k, t in COLUMNS)
    head += [
        "<div class='bar'>",
        f"<span>{key(GT_COLOUR)}ground truth</span><span>{key(MODEL_COLOUR, True)}model box</span>"
        f"<span>{key(CAM_COLOUR)}CAM box</span><span class='muted'>right panel: the CAM over the film</span>",
        f"<label>sort by <select id='sort'>{opts}</select></label>",
        "<label><select id='dir'><option value='asc' selected>worst first</option><option value='desc'>best first</option></select></label>",
        "<label>method <select id='method'><option value=''>all</option>"
        + "".join(f"<option value='{esc(m)}'>{esc(method_name(m))}</option>" for m in methods) + "</select></label>",
        "<label>class <select id='cls'><option value=''>all</option>"
        + "".join(f"<option value='{esc(c)}'>{esc(c)}</option>" for c in labels) + "</select></label>",
        "<span><b id='shown'></b> shown</span></div>",
    ]  # fmt: skip
    header = "".join(f"<th data-key='{k}'>{esc(t)}</th>" for k, t in COLUMNS)
    body = [
        "<table><thead><tr><th class='l'>Film and boxes | CAM</th><th class='l' data-key='image'>Case</th>"
        f"{header}</tr></thead><tbody>"
    ]
    for c in cases:
        values = {k: _value(c, k) for k, _ in COLUMNS}
        data = " ".join(f"data-{k.replace('_', '')}='{'' if v is None else round(v, 6)}'" for k, v in values.items())
        cells = "".join(
            f"<td class='{'' if v is None else 'bad' if v < 0.1 else 'good' if v >= 0.5 else ''}'>{_cell(v)}</td>" for v in values.values()
        )
        pic = f"<a href='{esc(c.thumbnail)}'><img loading='lazy' src='{esc(c.thumbnail)}' alt='{esc(c.image)}'></a>" if c.thumbnail else "<span class='muted'>no picture</span>"
        body.append(
            f"<tr data-image='{esc(c.image)}' data-label='{esc(c.label)}' data-method='{esc(c.method)}' {data}>"
            f"<td class='l'>{pic}</td><td class='l case'><b>{esc(c.label)}</b><br>{esc(method_name(c.method))}<br>"
            f"{esc(c.image)}<br><span class='muted'>box {c.box_index}: {', '.join(f'{v:.0f}' for v in c.box)}</span></td>"
            f"{cells}</tr>"
        )
    body.append("</tbody></table>")
    # dataset keys: data-model_iou -> dataset.modeliou; map the select's keys onto them.
    script = _SCRIPT.replace("r.dataset[k]", "r.dataset[k.replace(/_/g,'')]")
    return "\n".join([*head, *body, f"<script>{script}</script>", "</body></html>"]) + "\n"


def write_gallery(out: str | Path, result: AuditResult) -> Path:
    """Write ``OUT/gallery.html`` (the pictures were written during the run by :func:`write_case_thumbnail`)."""
    path = Path(out) / "gallery.html"
    path.write_text(gallery_html(result), encoding="utf-8")
    return path


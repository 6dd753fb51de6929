"""``gallery.html``: every boxed case of an audit on one static page, worst first, sortable by any metric.

One row per ground-truth box and CAM method: a picture of two panels (left: the film with the ground-truth box,
the model's box and the CAM box; right: the CAM over the film with the ground-truth and CAM boxes), drawn by
:func:`cxrdemo.render.casepicture.render_case_picture` with the single-case panels' styles, colour map and legend,
and the case's numbers. On a narrow screen (a phone) each row becomes a card: the picture full width, then the
numbers with their names. The page opens with the references and each method's verdict and, for a detector
(:mod:`cxrdemo.audit.detection`), its errors: the images ordered by missed findings, then by false boxes, then by
the most confident false box, each with what was missed and the false boxes' classes and scores (and links to the
image's pictures below).
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
from ..render.casepicture import LEGEND_CSS, legend_html

#: The gallery's columns: key, header, and whether higher is better (the default sort puts the worst first).
COLUMNS: tuple[tuple[str, str], ...] = tuple((k, METRIC_NAMES[k]) for k in ("probability", "model_iou", "cam_iou", *MAP_METRICS))


#: A case's note when its map has no region at the box threshold (e.g. Grad-CAM with no positive evidence for the
#: class: the ReLU leaves an empty map, which points nowhere and scores 0 everywhere).
NO_CAM_BOX = "<br><span class='muted'>no CAM box: no region of the map reaches the box threshold</span>"

def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.replace("++", "pp")).strip("-") or "x"


def write_case_thumbnail(
    folder: str | Path, film: np.ndarray, heatmap: np.ndarray, case: CaseRow, masks: Sequence[np.ndarray] | None = None
) -> str:
    """Write the case's two-panel JPEG into ``folder``; returns its path relative to ``folder``'s parent.

    Args:
        folder: the gallery picture folder (``OUT/gallery``).
        film: the film's thumbnail, ``(h, w)`` uint8, the whole image (any size; boxes are scaled to it).
        heatmap: the CAM of the case's class, model frame (square), values in [0, 1].
        case: the case (boxes in the original image's pixels).
        masks: a mask case's truth masks (one per reader, original pixels), drawn as outlines; ``None``: the box.
    """
    from ..boxes import Box
    from ..render.casepicture import render_case_picture

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    box = lambda b: Box(*b, case.label) if b is not None else None  # noqa: E731
    both = render_case_picture(film, heatmap, case.width, case.height, Box(*case.box, case.label), box(case.model_box), box(case.cam_box), masks)
    name = f"{_safe(Path(case.image).stem)}_{case.box_index}_{_safe(case.label)}_{_safe(case.method)}.jpg"
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    both.save(tmp, format="JPEG", quality=85)
    os.replace(tmp, folder / name)
    return f"{folder.name}/{name}"


def write_detection_thumbnail(folder: str | Path, film: np.ndarray, name: str, width: int, height: int,
                              truth: list, predicted: list) -> str:  # fmt: skip
    """Write a detector's picture of one image (ground-truth boxes and its boxes at the operating point) into
    ``folder``; returns its path relative to ``folder``'s parent."""
    from ..render.casepicture import render_detection_picture

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    picture = render_detection_picture(film, width, height, truth, predicted)
    file = f"{_safe(Path(name).stem)}_detector.jpg"
    tmp = folder / f".{file}.{os.getpid()}.tmp"
    picture.save(tmp, format="JPEG", quality=85)
    os.replace(tmp, folder / file)
    return f"{folder.name}/{file}"


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
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e3e3e3;padding:5px 6px;text-align:right;vertical-align:middle}
th{position:sticky;top:0;background:#f0f0f0;cursor:pointer;user-select:none;max-width:82px;line-height:1.25}
th.sorted::after{content:attr(data-dir);margin-left:4px;color:#0072B2}
td.l,th.l{text-align:left}td img{display:block;height:150px;border-radius:3px}
td.case{max-width:150px;overflow-wrap:anywhere}
td.bad{background:#fde8e4}td.good{background:#e6f5e9}
.muted{color:#666}
.verdicts{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:10px 0;font-size:14px}
.verdicts li{margin:4px 0}.verdicts table{font-size:13px}.verdicts td,.verdicts th{position:static;cursor:default}
img{max-width:100%}
@media (max-width: 720px){
 body{margin:8px}h1{font-size:18px}
 .bar{gap:8px}.bar label{flex:1 1 45%}
 table.cases,table.cases tbody,table.cases tr,table.cases td{display:block;width:auto}
 table.cases thead{display:none}
 table.cases tr{margin:0 0 12px;border:1px solid #ddd;border-radius:6px;background:#fff;padding:6px}
 table.cases td{border:0;padding:2px 4px;text-align:left;max-width:none}
 table.cases td[data-title]::before{content:attr(data-title) ": ";color:#666}
 table.cases td img{height:auto;width:100%}
 .verdicts{overflow-x:auto}
}
"""

_SCRIPT = """
const rows=[...document.querySelectorAll('table.cases tbody tr')];const tbody=document.querySelector('table.cases tbody');
const sortSel=document.getElementById('sort'),dirSel=document.getElementById('dir');
const mSel=document.getElementById('method'),cSel=document.getElementById('cls');
function val(r,k){const v=r.dataset[k];return v===''?NaN:(isNaN(+v)?v:+v);}
function apply(){const k=sortSel.value,asc=dirSel.value==='asc';
 rows.sort((a,b)=>{const x=val(a,k),y=val(b,k);const nx=Number.isNaN(x),ny=Number.isNaN(y);
  if(nx||ny)return nx-ny;return (x<y?-1:x>y?1:0)*(asc?1:-1);});
 for(const r of rows){const show=(mSel.value===''||r.dataset.method===mSel.value)&&(cSel.value===''||r.dataset.label===cSel.value);
  r.style.display=show?'':'none';tbody.appendChild(r);}
 document.querySelectorAll('table.cases th').forEach(th=>{th.classList.toggle('sorted',th.dataset.key===k);th.dataset.dir=asc?'\\u25B2':'\\u25BC';});
 document.getElementById('shown').textContent=rows.filter(r=>r.style.display!=='none').length;}
document.querySelectorAll('table.cases th[data-key]').forEach(th=>th.addEventListener('click',()=>{
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
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{_STYLE}{LEGEND_CSS}</style></head><body>",
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
    opts = "".join(f"<option value='{k}'{' selected' if k == 'energy_in_box' else ''}>{esc(t)}</option>" for k, t in COLUMNS)
    head += [
        "<div class='bar'>",
        legend_html(style_tag=False),
        f"<label>sort by <select id='sort'>{opts}</select></label>",
        "<label><select id='dir'><option value='asc' selected>worst first</option><option value='desc'>best first</option></select></label>",
        "<label>method <select id='method'><option value=''>all</option>"
        + "".join(f"<option value='{esc(m)}'>{esc(method_name(m))}</option>" for m in methods) + "</select></label>",
        "<label>class <select id='cls'><option value=''>all</option>"
        + "".join(f"<option value='{esc(c)}'>{esc(c)}</option>" for c in labels) + "</select></label>",
        "<span><b id='shown'></b> shown</span></div>",
    ]  # fmt: skip
    head += verdict_html(result)
    head += detection_errors_html(result)
    header = "".join(f"<th data-key='{k}'>{esc(t)}</th>" for k, t in COLUMNS)
    body = [
        "<table class='cases'><thead><tr><th class='l'>Film and boxes | CAM</th><th class='l' data-key='image'>Case</th>"
        f"{header}</tr></thead><tbody>"
    ]
    for c in cases:
        values = {k: _value(c, k) for k, _ in COLUMNS}
        data = " ".join(f"data-{k.replace('_', '')}='{'' if v is None else round(v, 6)}'" for k, v in values.items())
        cells = "".join(
            f"<td data-title='{esc(dict(COLUMNS)[k])}' class='{'' if v is None else 'bad' if v < 0.1 else 'good' if v >= 0.5 else ''}'>"
            f"{_cell(v)}</td>" for k, v in values.items()
        )  # fmt: skip
        pic = f"<a href='{esc(c.thumbnail)}'><img loading='lazy' src='{esc(c.thumbnail)}' alt='{esc(c.image)}'></a>" if c.thumbnail else "<span class='muted'>no picture</span>"
        body.append(
            f"<tr data-image='{esc(c.image)}' data-label='{esc(c.label)}' data-method='{esc(c.method)}' {data}>"
            f"<td class='l'>{pic}</td><td class='l case'><b>{esc(c.label)}</b><br>{esc(method_name(c.method))}<br>"
            f"{esc(c.image)}<br><span class='muted'>box {c.box_index}: {', '.join(f'{v:.0f}' for v in c.box)}</span>"
            f"{NO_CAM_BOX if c.cam_box is None else ''}</td>"
            f"{cells}</tr>"
        )
    body.append("</tbody></table>")
    # dataset keys: data-model_iou -> dataset.modeliou; map the select's keys onto them.
    script = _SCRIPT.replace("r.dataset[k]", "r.dataset[k.replace(/_/g,'')]")
    return "\n".join([*head, *body, f"<script>{script}</script>", "</body></html>"]) + "\n"


def verdict_html(result: AuditResult) -> list[str]:
    """The references and each method's verdict (as in report.md), for the top of the page."""
    doc, ref = result.plausibility, result.plausibility_reference
    if not doc or not ref:
        return []
    from ..formatting import fmt, fmt_estimate
    from .reference import REFERENCE_NAMES
    from .verdict import HEADLINE_METRICS, _NAMES

    esc = html.escape
    keys = [*HEADLINE_METRICS, "cam_iou"]
    rows = [f"<tr><th class='l'>map</th>{''.join(f'<th>{esc(_NAMES[k])}</th>' for k in keys)}</tr>"]
    for m, entry in doc["methods"].items():
        rows.append(f"<tr><td class='l'>{esc(method_name(m))}</td>" + "".join(f"<td>{esc(fmt_estimate(entry[k]['overall']))}</td>" for k in keys) + "</tr>")
    rows.append(f"<tr><td class='l'><i>{esc(REFERENCE_NAMES['uniform'])}</i></td>" + "".join(f"<td>{fmt(ref['uniform'][k])}</td>" for k in keys) + "</tr>")
    rows.append(f"<tr><td class='l'><i>{esc(REFERENCE_NAMES['center'])}</i></td>" + "".join(f"<td>{esc(fmt_estimate(ref['center'][k]))}</td>" for k in keys) + "</tr>")
    lines = "".join(f"<li>{esc(e['verdict']['line'])}</li>" for e in doc["methods"].values() if e.get("verdict"))
    readers = ref.get("readers") or {}
    if readers.get("available"):
        m = readers["metrics"]
        rows.append(f"<tr><td class='l'><i>{esc(readers['what'])}</i></td><td>{esc(fmt_estimate(m['pointing_game']['overall']))}</td>"
                    f"<td>{esc(fmt_estimate(m['energy_in_box']['overall']))}</td><td>IoU {esc(fmt_estimate(m['iou']['overall']))}</td></tr>")
        lines += "".join(f"<li>{esc(e['verdict']['readers']['line'])}</li>" for e in doc["methods"].values()
                         if (e.get("verdict") or {}).get("readers", {}).get("line"))  # fmt: skip
    elif readers:
        lines += f"<li>{esc(readers['what'])}: unavailable: {esc(str(readers.get('reason')))}.</li>"
    partial = ""
    if result.partial:
        partial = f"<p><b>Partial report:</b> {result.partial['images_done']} of {result.partial['images_planned']} images; {esc(result.partial['resume'])}.</p>"
    return [
        "<div class='verdicts'><b>Is the map on the box more than chance, more than a centre bias?</b>",
        "<p class='muted'>Mean over boxes [95% CI]; the references are maps that ignore the image, scored by the same "
        "code on the same boxes. Verdicts compare each method with them box by box (paired).</p>",
        f"<table>{''.join(rows)}</table><ul>{lines}</ul>{partial}</div>",
    ]  # fmt: skip


def detection_errors_html(result: AuditResult) -> list[str]:
    """A detector's images with errors, worst first (missed findings, then false boxes, then the most confident
    false box: :func:`cxrdemo.audit.detection.image_errors`); nothing for a model that predicts no scored boxes."""
    doc = result.detection
    if not doc:
        return []
    esc = html.escape
    errs = doc["errors"]
    pictures: dict[str, list[str]] = {}
    for c in result.cases:
        if c.thumbnail:
            pictures.setdefault(c.image, []).append(c.thumbnail)
    rows = ["<tr><th class='l'>image</th><th>missed findings</th><th class='l'>missed</th><th>false boxes</th>"
            "<th class='l'>false boxes (class score)</th><th class='l'>CAM pictures</th></tr>"]  # fmt: skip
    for e in errs["images"]:
        missed = ", ".join(esc(m["label"]) for m in e["missed"]) or "-"
        false = ", ".join(f"{esc(b['label'])} {b['score']:.2f}" for b in e["false_boxes"]) or "-"
        links = " ".join(f"<a href='{esc(t)}'>{k + 1}</a>" for k, t in enumerate(dict.fromkeys(pictures.get(e["image"], [])))) or "-"
        pic = e.get("thumbnail") or ""
        img = f"<a href='{esc(pic)}'><img loading='lazy' src='{esc(pic)}' alt='{esc(e['image'])}'></a>" if pic else ""
        rows.append(
            f"<tr class='deterr' data-image='{esc(e['image'])}'><td class='l'>{img}{esc(e['image'])}</td><td>{len(e['missed'])}</td>"
            f"<td class='l'>{missed}</td><td>{len(e['false_boxes'])}</td><td class='l'>{false}</td><td class='l'>{links}</td></tr>"
        )  # fmt: skip
    ap = doc["ap"].get("0.4") or next(iter(doc["ap"].values()))
    mean = ap["mean"]["value"]
    summary = (f"mAP@{ap['iou_threshold']:g} {mean:.3f}" if mean is not None else f"mAP@{ap['iou_threshold']:g} undefined (no ground truth)")
    body = f"<table>{''.join(rows)}</table>" if errs["images"] else "<p>No missed finding and no false box.</p>"
    return [
        "<div class='verdicts'><b>Detector: the cases it got wrong, worst first</b>",
        f"<p class='muted'>{doc['n_images']} images, {doc['n_truth']} ground-truth boxes, {doc['n_predicted']} predicted "
        f"boxes; {esc(summary)} (report.md has every figure with its CI). A box counts at score &ge; "
        f"{errs['score_threshold']:g}; a finding is found by a same-class box with IoU &ge; {errs['iou_threshold']:g}, "
        "each box matched once. Pictures: the ground-truth boxes (solid) and the detector's boxes at that score "
        "(dashed).</p>",
        body,
        "</div>",
    ]  # fmt: skip


def write_gallery(out: str | Path, result: AuditResult) -> Path:
    """Write ``OUT/gallery.html`` (the pictures were written during the run by :func:`write_case_thumbnail`)."""
    path = Path(out) / "gallery.html"
    path.write_text(gallery_html(result), encoding="utf-8")
    return path


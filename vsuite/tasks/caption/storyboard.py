"""The HTML storyboard of `vsuite caption --storyboard FILE`: one self-contained page to read a captioned video.

Top to bottom: the title and a one-line summary, a scene timeline (one coloured block per scene, its width
proportional to the scene's length, each a link to its scene; none for a whole-video caption), then one card per scene: number, title and
time span, the frames the model saw with their times, shot and camera (only when the model gave them), the
description, and the scene's voice-over with its times. The full sampling protocol sits at the end in a
collapsed <details> block. Inline CSS, thumbnails as base64 JPEG data URIs, no script, no external file:
the page can be mailed or archived as it is. Long words and paths wrap (`overflow-wrap: anywhere`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

THUMB_HEIGHT = 128  # rows of a thumbnail (never more than the video's own height)
LABEL_MIN = 0.025  # timeline blocks narrower than this fraction of the video carry no number
PALETTE = ("#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316", "#ec4899")

_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--bg:#f5f7fa;--card:#fff;--line:#e4e7eb;--voice:#f0f4ff}
@media (prefers-color-scheme:dark){:root{--fg:#e4e7eb;--muted:#9aa5b1;--bg:#15191e;--card:#1f252c;
--line:#323b45;--voice:#1c2738}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;overflow-wrap:anywhere;word-break:normal}
main{max-width:1100px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:1.75em;line-height:1.25;margin:0 0 4px}
.sub{color:var(--muted);margin:0 0 20px}
.sub span+span::before{content:"\\00b7";margin:0 .5em}
.timeline{margin:0 0 28px}
.bar{display:flex;height:34px;border-radius:8px;overflow:hidden;background:var(--line)}
.seg{flex:1 1 0;min-width:3px;display:flex;align-items:center;justify-content:center;overflow:hidden;
color:#fff;font-weight:600;font-size:.8em;text-decoration:none;border-right:2px solid var(--bg);
white-space:nowrap;overflow-wrap:normal}
.seg:last-child{border-right:0}
.seg:hover{filter:brightness(1.12)}
.axis{position:relative;height:1.4em;font-size:.75em;color:var(--muted);font-variant-numeric:tabular-nums}
.axis span{position:absolute;top:2px;transform:translateX(-50%);white-space:nowrap}
.axis span:first-child{transform:none}
.axis span.end{right:0;transform:none}
.scene{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--c);border-radius:10px;
padding:16px 20px;margin:0 0 18px;scroll-margin-top:12px}
.head{display:flex;align-items:baseline;gap:12px;flex-wrap:wrap;margin:0 0 12px}
.num{flex:none;background:var(--c);color:#fff;font-weight:700;border-radius:999px;min-width:2em;padding:0 .55em;
text-align:center;font-size:.85em;line-height:1.8}
.head h2{flex:1 1 20em;min-width:0;font-size:1.15em;line-height:1.35;margin:0}
.time{color:var(--muted);font-size:.85em;font-variant-numeric:tabular-nums;white-space:nowrap}
.frames{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 12px}
.frames figure{margin:0}
.frames img{display:block;height:auto;max-width:100%;border-radius:4px;border:1px solid var(--line)}
.frames figcaption{font-size:.75em;color:var(--muted);text-align:center;font-variant-numeric:tabular-nums}
.facts{display:flex;flex-wrap:wrap;gap:6px 18px;margin:0 0 8px;font-size:.9em}
.facts div{min-width:0}
.facts b{color:var(--muted);font-weight:600;margin-right:.4em}
.content{margin:0;max-width:75ch}
.voice{margin:12px 0 0;padding:8px 14px;background:var(--voice);border-radius:8px;max-width:75ch}
.voice h3{margin:0 0 4px;font-size:.75em;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.voice ol{list-style:none;margin:0;padding:0}
.voice li{margin:2px 0}
.voice .t{color:var(--muted);font-size:.85em;font-variant-numeric:tabular-nums;margin-right:.3em}
details{margin:28px 0 0;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 16px}
summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8em;margin:10px 0 0}
footer{margin-top:24px;color:var(--muted);font-size:.8em}
"""


def thumbnail_uri(frame, height: int = THUMB_HEIGHT) -> str:
    """A frame [H, W, 3] uint8 -> data:image/jpeg;base64,... scaled to `height` rows (never enlarged)."""
    import numpy as np
    from PIL import Image

    img = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    w, h = img.size
    rows = min(height, h)
    img = img.resize((max(1, round(w * rows / h)), rows))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def clock(t: float, long: bool = False) -> str:
    """Seconds -> m:ss.s, or h:mm:ss.s when `long` (a video of an hour or more)."""
    t = max(float(t), 0.0)
    tenths = int(round(t * 10))
    h, rem = divmod(tenths, 36000)
    m, rem = divmod(rem, 600)
    s = rem / 10
    return f"{h}:{m:02d}:{s:04.1f}" if long or h else f"{m}:{s:04.1f}"


def _ticks(duration: float) -> list[float]:
    """Round times for the timeline's axis: at most about 8, none crowding the end label."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if duration / step <= 8:
            break
    out, t = [], 0.0
    while t < duration * 0.92:
        out.append(t)
        t += step
    return out


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def to_html(scenes: list[dict], thumbs: dict[str, list[str]], *, video: str, title: str, duration: float,
            protocol: dict) -> str:
    """The page; `scenes` are the caption records, `thumbs` maps a clip id to its frames' data URIs."""
    long = duration >= 3600
    total = max(duration, 1e-6)
    colour = {sc["clip_id"]: PALETTE[i % len(PALETTE)] for i, sc in enumerate(scenes)}
    voiced = any(sc.get("voiceover") for sc in scenes)
    summary = [video, clock(duration, long), f"{len(scenes)} scene{'s' if len(scenes) != 1 else ''}",
               *(["voice-over"] if voiced else []), f"model {protocol.get('model', '?')}",
               {"vript": "Vript sampling, 3-5 frames per scene"}.get(
                   protocol.get("protocol"), f"{protocol.get('protocol', '?')} sampling")]
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{_e(title or video)} - storyboard</title><style>{_CSS}</style></head><body><main>",
             f"<header><h1>{_e(title or video)}</h1><p class='sub'>"
             + "".join(f"<span>{_e(s)}</span>" for s in summary) + "</p></header>"]

    segs = []
    for i, sc in enumerate(scenes):
        span = max(float(sc["end"]) - float(sc["start"]), 0.0)
        tip = f"Scene {i + 1}: {sc['caption']['scene_title']} ({clock(sc['start'], long)}-{clock(sc['end'], long)})"
        label = i + 1 if span / total >= LABEL_MIN else ""  # a number only where it fits (~28 px of 1100)
        segs.append(f"<a class='seg' href='#{_e(sc['clip_id'])}' style='flex-grow:{span / total:.5f};"
                    f"background:{colour[sc['clip_id']]}' title='{_e(tip)}'>{label}</a>")
    axis = [f"<span style='left:{100 * t / total:.3f}%'>{clock(t, long).split('.')[0]}</span>"
            for t in _ticks(duration)]
    if len(scenes) > 1:  # a whole-video caption has nothing to lay out in time
        parts.append("<nav class='timeline' aria-label='Scene timeline'><div class='bar'>" + "".join(segs)
                     + "</div><div class='axis'>" + "".join(axis)
                     + f"<span class='end'>{clock(duration, long)}</span></div></nav>")

    for i, sc in enumerate(scenes):
        parts.append(_scene_card(i, len(scenes), sc, thumbs.get(sc["clip_id"], []), colour[sc["clip_id"]], long))

    details = {"protocol": protocol,
               "scenes": {sc["clip_id"]: {k: sc["sampling"].get(k) for k in ("frames", "indices", "timestamps")}
                          for sc in scenes}}
    parts.append("<details class='protocol'><summary>Sampling protocol and model</summary><pre>"
                 f"{_e(json.dumps(details, indent=2))}</pre></details>")
    parts.append("<footer>Written by vsuite caption. Captions are model output: check them before use.</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _scene_card(i: int, n: int, sc: dict, uris: list[str], colour: str, long: bool) -> str:
    cap = sc["caption"]
    start, end = float(sc["start"]), float(sc["end"])
    stamps = sc["sampling"].get("timestamps", [])
    figs = "".join(f"<figure><img alt='frame at {clock(t, long)}' src='{uri}'><figcaption>{clock(t, long)}"
                   "</figcaption></figure>" for uri, t in zip(uris, stamps))
    facts = "".join(f"<div><b>{label}</b>{_e(cap[key])}</div>"
                    for label, key in (("Shot", "shot_type"), ("Camera", "camera_movement"))
                    if str(cap.get(key, "")).strip())
    out = [f"<section class='scene' id='{_e(sc['clip_id'])}' style='--c:{colour}'>",
           f"<div class='head'><span class='num' title='Scene {i + 1} of {n}'>{i + 1}</span>"
           f"<h2>{_e(cap['scene_title'])}</h2><span class='time'>{clock(start, long)} &ndash; {clock(end, long)} "
           f"({end - start:.1f} s)</span></div>"]
    if figs:
        out.append(f"<div class='frames'>{figs}</div>")
    if facts:
        out.append(f"<div class='facts'>{facts}</div>")
    out.append(f"<p class='content'>{_e(cap['content'])}</p>")
    voice = _voice(sc, long)
    if voice:
        out.append(voice)
    out.append("</section>")
    return "".join(out)


def _voice(sc: dict, long: bool) -> str:
    """The scene's voice-over, one line per ASR segment with its time in the video."""
    segs = sc.get("voice_segments") or []
    if segs:
        offset = float(sc["start"])  # segments are on the scene's clock (0 for the whole video)
        items = "".join(f"<li><span class='t'>{clock(offset + float(s), long)}</span> {_e(t)}</li>"
                        for s, _, t in segs)
    elif sc.get("voiceover"):
        items = f"<li>{_e(' '.join(sc['voiceover']))}</li>"
    else:
        return ""
    return f"<div class='voice'><h3>Voice-over</h3><ol>{items}</ol></div>"


def write(path: Path, plan, scenes: list[dict], protocol: dict, *, backend: str = "auto") -> Path:
    """Write the storyboard atomically; thumbnails come from the scene records (re-decoded if absent)."""
    from ...data import vript

    thumbs = {}
    for sc in scenes:
        uris = sc.get("thumbnails")
        if not uris:  # a record cached by an older version
            from ...media import read_frames

            frames = read_frames(plan.video, sc["sampling"]["indices"], backend=backend).frames.numpy()
            uris = [thumbnail_uri(f) for f in frames]
        thumbs[sc["clip_id"]] = uris
    return vript.atomic_write_text(Path(path), to_html(scenes, thumbs, video=plan.video.name, title=plan.title,
                                                       duration=plan.duration, protocol=protocol))

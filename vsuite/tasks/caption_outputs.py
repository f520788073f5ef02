"""Writers for `vsuite caption` results: Markdown script, SRT, WebVTT and the HTML storyboard.

Each takes the list of scene results (dicts with clip_id, start, end, caption, voiceover, sampling) and returns
text; the storyboard embeds its thumbnails as base64 JPEG data URIs so the page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
import json

from ..data.vript import script_block


def _stamp(t: float, sep: str) -> str:
    ms = int(round(max(t, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(scenes: list[dict]) -> list[tuple[float, float, str]]:
    """Strictly increasing, non-overlapping cues (a zero-length scene gets at least 1 ms)."""
    cues, last = [], 0.0
    for sc in scenes:
        start = max(float(sc["start"]), last)
        end = max(float(sc["end"]), start + 0.001)
        cap = sc["caption"]
        cues.append((start, end, f"{cap['scene_title']}\n{cap['content']}"))
        last = end
    return cues


def to_srt(scenes: list[dict]) -> str:
    return "\n".join(f"{i}\n{_stamp(s, ',')} --> {_stamp(e, ',')}\n{text}\n"
                     for i, (s, e, text) in enumerate(_cues(scenes), 1))


def to_vtt(scenes: list[dict]) -> str:
    body = "\n".join(f"{i}\n{_stamp(s, '.')} --> {_stamp(e, '.')}\n{text.replace('-->', '->')}\n"
                     for i, (s, e, text) in enumerate(_cues(scenes), 1))
    return "WEBVTT\n\n" + body


def to_markdown(scenes: list[dict], *, video: str, title: str, duration: float, protocol: dict) -> str:
    lines = [f"# {title or video}", "", f"Video: `{video}` ({duration:.1f} s, {len(scenes)} scene(s))", "",
             f"Sampling: {json.dumps(protocol)}", ""]
    for i, sc in enumerate(scenes):
        cap = sc["caption"]
        header, content = script_block(i, len(scenes), cap, sc["start"], sc["end"], duration).split("\n", 1)
        lines += [f"## {header}", "", f"- Shot type: {cap['shot_type']}",
                  f"- Camera movement: {cap['camera_movement']}", "", content, ""]
        if sc.get("voiceover"):
            lines += ["> Voice-over: " + " ".join(sc["voiceover"]), ""]
    return "\n".join(lines)


def thumbnail_uri(frame, height: int = 96) -> str:
    """A frame [H, W, 3] uint8 -> data:image/jpeg;base64,... (longest side scaled to `height` rows)."""
    import numpy as np
    from PIL import Image

    img = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    w, h = img.size
    img = img.resize((max(1, round(w * height / h)), height))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = ("body{font-family:sans-serif;margin:2em;max-width:70em}section{border-top:1px solid #ccc;padding:.5em 0}"
        ".strip img{margin-right:4px;border:1px solid #888}.ts{font-family:monospace;color:#555}")
_CHECK = ("<script>window.addEventListener('load',function(){var imgs=document.images,ok=imgs.length>0;"
          "for(var i=0;i<imgs.length;i++){if(!(imgs[i].complete&&imgs[i].naturalWidth>0))ok=false;}"
          "var m=document.createElement('div');m.id='render-check';"
          "m.textContent=(ok?'IMAGES-OK ':'IMAGES-BROKEN ')+imgs.length;document.body.appendChild(m);});</script>")


def to_html(scenes: list[dict], thumbs: dict[str, list[str]], *, video: str, title: str, duration: float,
            protocol: dict) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title or video)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title or video)}</h1>",
             f"<p>{html.escape(video)} &middot; {duration:.1f} s &middot; {len(scenes)} scene(s)</p>",
             f"<p class='ts'>sampling: {html.escape(json.dumps(protocol))}</p>"]
    for i, sc in enumerate(scenes):
        cap = sc["caption"]
        stamp = f"[{sc['start']:.1f}, {sc['end']:.1f}]"
        imgs = "".join(f"<img alt='frame {t:.2f}s' title='{t:.2f}s' src='{uri}'>"
                       for uri, t in zip(thumbs.get(sc["clip_id"], []), sc["sampling"]["timestamps"]))
        parts.append(f"<section id='{html.escape(sc['clip_id'])}'><h2>Scene {i + 1}/{len(scenes)}: "
                     f"{html.escape(cap['scene_title'])}</h2><div class='ts'>Duration: {stamp}/{duration:.1f}s</div>"
                     f"<div class='strip'>{imgs}</div><p><b>Shot:</b> {html.escape(cap['shot_type'])} "
                     f"<b>Camera:</b> {html.escape(cap['camera_movement'])}</p><p>{html.escape(cap['content'])}</p>"
                     "</section>")
    parts.append(_CHECK + "</body></html>")
    return "\n".join(parts)

"""BLEU-1..4, METEOR, ROUGE-L and CIDEr with the COCO caption protocol, as FAVDBench's evaluation computes them.

The official evaluation (OpenNLPLab/FAVDBench, AVLFormer/src/evalcap/utils_caption_evaluate.py) runs
LuoweiZhou/coco-caption's COCOEvalCap with `df="corpus"`: the Stanford PTB tokenizer (lower-cased, punctuation
tokens removed), then Bleu(4) (corpus BLEU, "closest" reference length), Meteor 1.5, Rouge-L (beta 1.2) and
Cider with document frequencies from the references of the scored set -- which is the CIDEr-D variant
(clipped n-gram counts, Gaussian length penalty sigma 6, x10). That fork's scorers are line for line those of the
PyPI package `pycocoevalcap` (1.2) used here, where CIDEr always takes its document frequencies from the corpus.
SPICE, which the fork also runs, is left out (it needs Stanford models that are not on PyPI).

The PTB tokenizer and METEOR are Java programs shipped inside pycocoevalcap: without `java` on PATH this is a
one-line ModelNotFoundError naming what to install. The tokenizer is driven here (same jar, same flags, same
punctuation list) so that its temporary file goes to the system temp folder instead of site-packages and its
chatter stays off stdout; Bleu runs with verbose=0 for the same reason. Values are fractions (x100 for tables).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from ..errors import ModelNotFoundError

BLEU = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4")
METRICS = (*BLEU, "METEOR", "ROUGE_L", "CIDEr")
GROUPS = ("bleu", "meteor", "rouge", "cider")  # what `metrics=` may name
_INSTALL_JAVA = "install a Java runtime (Debian/Ubuntu: apt-get install default-jre-headless)"


def check_available(groups: Sequence[str] = GROUPS) -> None:
    """pycocoevalcap importable and `java` on PATH (the tokenizer needs it for any group), else one line."""
    try:
        import pycocoevalcap.tokenizer.ptbtokenizer  # noqa: F401
    except ImportError:
        raise ModelNotFoundError("BLEU/METEOR/ROUGE-L/CIDEr need pycocoevalcap: pip install pycocoevalcap") from None
    if groups and shutil.which("java") is None:
        raise ModelNotFoundError(f"BLEU/METEOR/ROUGE-L/CIDEr need Java (the COCO PTB tokenizer and METEOR are Java "
                                 f"programs) and `java` is not on PATH: {_INSTALL_JAVA}")


def ptb_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """{id: [caption, ...]} -> {id: [tokenized caption, ...]}: Stanford PTBTokenizer 3.4.1 with -preserveLines
    -lowerCase, one caption per line, then the COCO punctuation tokens dropped (as pycocoevalcap's PTBTokenizer)."""
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = os.path.join(os.path.dirname(os.path.abspath(ptb.__file__)), ptb.STANFORD_CORENLP_3_4_1_JAR)
    keys = [k for k, caps in captions.items() for _ in caps]
    # one caption per line: newlines inside a caption would shift every later line
    lines = [c.replace("\r", " ").replace("\n", " ") for caps in captions.values() for c in caps]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(lines))
        tmp = f.name
    try:
        proc = subprocess.run(["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                               "-lowerCase", tmp], capture_output=True, timeout=3600)
    except FileNotFoundError:
        raise ModelNotFoundError(f"the COCO PTB tokenizer needs Java: {_INSTALL_JAVA}") from None
    finally:
        os.unlink(tmp)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise ModelNotFoundError(f"the COCO PTB tokenizer (Java) failed: {tail[0]}")
    out_lines = proc.stdout.decode("utf-8").split("\n")
    result: dict[str, list[str]] = {k: [] for k in captions}
    for i, key in enumerate(keys):
        line = out_lines[i] if i < len(out_lines) else ""
        result[key].append(" ".join(w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS))
    return result


def caption_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                   metrics: Sequence[str] = GROUPS) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """COCO caption metrics of `predictions` {id: caption} against `references` {id: [caption, ...]}.

    Returns (corpus scores {metric: value}, per-item scores {id: {metric: value}}), both over the ids of
    `predictions` (every one must have references: a caller's bug otherwise). The corpus BLEU is computed from
    summed n-gram counts (not the mean of per-item BLEU), METEOR by the jar over the whole set, ROUGE-L and
    CIDEr are means of the per-item values, exactly as coco-caption reports them.
    """
    unknown = [g for g in metrics if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown caption metric group(s) {unknown}; choose from {GROUPS}")
    ids = list(predictions)
    if not ids or not metrics:
        return {}, {i: {} for i in ids}
    missing = [i for i in ids if not references.get(i)]
    if missing:
        raise ValueError(f"no references for {missing[0]!r}")
    check_available(metrics)
    gts = ptb_tokenize({i: list(references[i]) for i in ids})
    res = ptb_tokenize({i: [predictions[i]] for i in ids})
    corpus: dict[str, float] = {}
    items: dict[str, dict[str, float]] = {i: {} for i in ids}

    def put(name: str, total, per_item) -> None:
        corpus[name] = float(total)
        for i, value in zip(ids, per_item):
            items[i][name] = float(value)

    if "bleu" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu

        totals, per = Bleu(4).compute_score(gts, res, verbose=0)
        for name, total, values in zip(BLEU, totals, per):
            put(name, total, values)
    if "meteor" in metrics:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        try:
            total, values = meteor.compute_score(gts, res)
        finally:
            _close_meteor(meteor)
        put("METEOR", total, values)
    if "rouge" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge

        total, values = Rouge().compute_score(gts, res)
        put("ROUGE_L", total, values)
    if "cider" in metrics:
        from pycocoevalcap.cider.cider import Cider

        total, values = Cider().compute_score(gts, res)
        put("CIDEr", total, values)
    return corpus, items


def _close_meteor(meteor) -> None:
    """Stop the METEOR JVM now (its __del__ would, at some later garbage collection)."""
    proc = getattr(meteor, "meteor_p", None)
    if proc is not None and proc.poll() is None:
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.kill()
        proc.wait()
    meteor.meteor_p = _Closed()


class _Closed:
    """Stands in for the killed process so the wrapper's own __del__ has nothing left to do."""

    class _Pipe:
        def close(self) -> None:
            pass

    stdin = _Pipe()

    def kill(self) -> None:
        pass

    def wait(self) -> None:
        pass

    def poll(self) -> int:
        return 0

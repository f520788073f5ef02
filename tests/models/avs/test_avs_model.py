"""AVSModel: shapes for both backbones and fusions, HF round trip, which frames supervise, frozen VGGish,
the projection's mask source per setting, and a few optimizer steps that lower the loss."""

import pytest
import torch
from avs_tiny import tiny_batch, tiny_config

from vsuite.models.avs import AVSConfig, AVSModel

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


@pytest.mark.parametrize("backbone", ["pvt_v2_b5", "resnet50"])
@pytest.mark.parametrize("fusion", ["av_corr", "tpavi"])
def test_shapes_and_losses(backbone, fusion):
    torch.manual_seed(0)
    model = AVSModel(tiny_config(backbone, fusion=fusion))
    pixels, log_mel, masks = tiny_batch()
    out = model(pixels, audio_log_mel=log_mel, masks=masks)
    assert out.logits.shape == (2, 5, 1, 64, 64)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert set(out.losses) == {"struct", "avm", "latent"}
    w = model.config  # S4 defaults: L_AVM weight 0, latent weight 1
    assert w.sim_loss_weight == 0.0
    assert out.loss.item() == pytest.approx(out.losses["struct"] + out.losses["latent"], rel=1e-5)
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []  # every trainable parameter is used (DDP without find_unused_parameters)
    model.eval()
    with torch.no_grad():
        plain = model(pixels, audio_log_mel=log_mel)
    assert plain.loss is None and plain.losses == {} and plain.logits.shape == (2, 5, 1, 64, 64)


def test_precomputed_audio_features_equal_the_vggish_path():
    torch.manual_seed(0)
    model = AVSModel(tiny_config("resnet50")).eval()
    pixels, log_mel, _ = tiny_batch()
    with torch.no_grad():
        feats = model.audio_backbone(log_mel.reshape(10, 1, 96, 64)).reshape(2, 5, 16)
        a = model(pixels, audio_log_mel=log_mel).logits
        b = model(pixels, audio_features=feats).logits
        c = model(pixels, audio_features=feats + 1.0).logits
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)  # the audio really reaches the masks
    assert (feats >= 0).all()  # torchvggish's final ReLU


def test_other_resolution_and_ms3_setting():
    torch.manual_seed(0)
    model = AVSModel(tiny_config(setting="ms3"))
    assert model.config.sim_loss_weight == 0.5
    pixels, log_mel, masks = tiny_batch(b=1, size=96)
    out = model(pixels, audio_log_mel=log_mel, masks=masks)
    assert out.logits.shape == (1, 5, 1, 96, 96)
    expected = out.losses["struct"] + 0.5 * out.losses["avm"] + out.losses["latent"]
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def test_save_pretrained_round_trip_gives_identical_logits(tmp_path):
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    model = AVSModel(tiny_config(fusion="tpavi")).eval()
    for p in model.parameters():  # move every weight away from its initial value (TPAVI's W_z BN is zero)
        p.data.add_(0.05 * torch.randn_like(p))
    pixels, log_mel, _ = tiny_batch()
    with torch.no_grad():
        before = model(pixels, audio_log_mel=log_mel).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    assert isinstance(AutoConfig.from_pretrained(tmp_path), AVSConfig)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is AVSModel
    assert not any(p.requires_grad for p in loaded.audio_backbone.parameters())
    with torch.no_grad():
        after = loaded(pixels, audio_log_mel=log_mel).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_s4_supervises_only_the_valid_frame():
    torch.manual_seed(0)
    model = AVSModel(tiny_config()).eval()  # eval: BatchNorm does not mix the frames' statistics
    pixels, log_mel, masks = tiny_batch()
    valid = torch.zeros(2, 5, dtype=torch.bool)
    valid[:, 0] = True
    changed = masks.clone()
    changed[:, 1:] = 1.0 - changed[:, 1:]  # every unsupervised frame's mask flipped
    first = masks.clone()
    first[:, 0] = 1.0 - first[:, 0]
    with torch.no_grad():
        base = model(pixels, audio_log_mel=log_mel, masks=masks, mask_valid=valid)
        other = model(pixels, audio_log_mel=log_mel, masks=changed, mask_valid=valid)
        flipped = model(pixels, audio_log_mel=log_mel, masks=first, mask_valid=valid)
        every = model(pixels, audio_log_mel=log_mel, masks=changed)  # mask_valid None = all frames
    assert other.loss.item() == base.loss.item()
    assert flipped.losses["struct"] != pytest.approx(base.losses["struct"], rel=1e-4)
    assert every.losses["struct"] != pytest.approx(base.losses["struct"], rel=1e-4)
    # S4: the projection masks with the predicted logits, so the latent loss ignores the ground truth
    assert flipped.losses["latent"] == base.losses["latent"]


def test_ms3_projection_uses_the_ground_truth():
    torch.manual_seed(0)
    model = AVSModel(tiny_config(setting="ms3")).eval()
    pixels, log_mel, masks = tiny_batch()
    changed = masks.clone()
    changed[:, 3] = 1.0 - changed[:, 3]
    with torch.no_grad():
        base = model(pixels, audio_log_mel=log_mel, masks=masks)
        other = model(pixels, audio_log_mel=log_mel, masks=changed)
    assert other.losses["latent"] != pytest.approx(base.losses["latent"], rel=1e-5)
    assert other.losses["avm"] == base.losses["avm"]  # L_AVM masks with the predictions, never the GT


def test_vggish_frozen_by_default_and_trainable_on_request():
    pixels, log_mel, masks = tiny_batch(b=1)
    for frozen in (True, False):
        torch.manual_seed(0)
        model = AVSModel(tiny_config(vggish_frozen=frozen))
        model(pixels, audio_log_mel=log_mel, masks=masks).loss.backward()
        grad = model.audio_backbone.embeddings[0].weight.grad
        assert (grad is None) == frozen
        assert model.neck.conv_list[0].reduce[0].conv.weight.grad is not None


def test_optional_parts_are_not_built():
    model = AVSModel(tiny_config(motion=False, projection=False))
    names = set(model.state_dict())
    assert not any(n.startswith(("corr_atten.", "mask_encoder.", "maksed_visual_to_audio.")) for n in names)
    pixels, log_mel, masks = tiny_batch(b=1)
    out = model(pixels, audio_log_mel=log_mel, masks=masks)
    assert out.losses["latent"] == 0.0


@pytest.mark.parametrize("kwargs,needle", [
    (dict(fusion="concat"), "fusion"), (dict(audio_dim=32), "audio_dim"), (dict(image_size=50), "image_size"),
    (dict(setting="avss"), "setting"), (dict(neck_channels=18, audio_dim=18), "neck_channels"),
])
def test_config_rejects_bad_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        tiny_config(**kwargs)


def test_forward_rejects_bad_inputs():
    model = AVSModel(tiny_config()).eval()
    pixels, log_mel, masks = tiny_batch(b=1)
    with pytest.raises(ValueError, match="exactly one"):
        model(pixels)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(pixels[..., :48, :48], audio_log_mel=log_mel)
    with pytest.raises(ValueError, match="masks"):
        model(pixels, audio_log_mel=log_mel, masks=masks[..., :32, :32])
    with pytest.raises(ValueError, match="no frame"):
        model(pixels, audio_log_mel=log_mel, masks=masks, mask_valid=torch.zeros(1, 5, dtype=torch.bool))


@pytest.mark.parametrize("backbone", ["pvt_v2_b5", "resnet50"])
def test_a_few_adam_steps_lower_the_loss(backbone):
    torch.manual_seed(0)
    model = AVSModel(tiny_config(backbone, setting="ms3")).train()
    pixels, log_mel, masks = tiny_batch(b=1)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        out = model(pixels, audio_log_mel=log_mel, masks=masks)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.9 * losses[0], losses

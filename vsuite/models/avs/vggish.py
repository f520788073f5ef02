"""VGGish audio embedder (Hershey et al. 2017) with the torchvggish layout, as AVSBench and AVS-bidirectional use it.

  log-mel [N, 1, 96, 64] -> 6 x (3x3 conv + ReLU), 2x2 max-pool after convs 1, 2, 4, 6 -> [N, C6, 6, 4]
  -> flatten in (H, W, C) order (the TensorFlow layout torchvggish keeps for its ported weights)
  -> Linear(C6*24 -> 4096) ReLU -> Linear(4096 -> 4096) ReLU -> Linear(4096 -> 128) ReLU -> [N, 128]

The final ReLU is torchvggish's (its embeddings Sequential ends with one); no PCA postprocessing (the AVS code
runs with POSTPROCESS_LOG_MEL_WITH_PCA False). Module names equal torchvggish's `features.{0,3,6,8,11,13}` and
`embeddings.{0,2,4}`, so the published vggish-10086976.pth loads after `convert_vggish_state_dict`, which only
strips wrapper prefixes and drops the PCA tensors.
"""

from __future__ import annotations

import torch
from torch import nn

TORCHVGGISH_CHANNELS = (64, 128, 256, 256, 512, 512)
_POOL_AFTER = (0, 1, 3, 5)  # torchvggish make_layers: [64, M, 128, M, 256, 256, M, 512, 512, M]
CONV_INDICES = (0, 3, 6, 8, 11, 13)  # positions of the convs in `features`
LINEAR_INDICES = (0, 2, 4)  # positions of the Linears in `embeddings`


class VGGish(nn.Module):
    def __init__(self, channels=TORCHVGGISH_CHANNELS, hidden_size: int = 4096, embedding_size: int = 128):
        super().__init__()
        layers, c_in = [], 1
        for i, c_out in enumerate(channels):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            if i in _POOL_AFTER:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(c_in * 6 * 4, hidden_size), nn.ReLU(True),
            nn.Linear(hidden_size, hidden_size), nn.ReLU(True),
            nn.Linear(hidden_size, embedding_size), nn.ReLU(True))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:  # [N, 1, 96, 64] -> [N, 128]
        if log_mel.dim() != 4 or tuple(log_mel.shape[1:]) != (1, 96, 64):
            raise ValueError(f"VGGish takes log-mel examples [N, 1, 96, 64], got {tuple(log_mel.shape)}")
        x = self.features(log_mel)  # [N, C, 6, 4]
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # (H, W, C) order, as the ported TF weights expect
        return self.embeddings(x)


_WRAPPERS = ("module.", "audio_backbone.", "vggish.")  # DataParallel, AVSBench's audio_extractor, hub wrappers
_PCA = ("pproc.", "pca_eigen_vectors", "pca_means")


def convert_vggish_state_dict(sd: dict) -> dict:
    """Published torchvggish keys (vggish-10086976.pth: features.*, embeddings.*) -> VGGish names.

    Strips the wrapper prefixes `module.`, `audio_backbone.` (AVSBench's audio_extractor), `vggish.`; drops
    the PCA postprocessor tensors. Any other key, or a missing conv / Linear, is a DataError."""
    from ...errors import DataError

    out, unknown = {}, []
    expected = {f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}
    expected |= {f"embeddings.{i}.{p}" for i in LINEAR_INDICES for p in ("weight", "bias")}
    for key, value in sd.items():
        name = key
        while name.startswith(_WRAPPERS):
            name = name.split(".", 1)[1]
        if name.startswith(_PCA):
            continue
        if name in expected:
            out[name] = value
        else:
            unknown.append(key)
    if unknown:
        raise DataError(f"not a torchvggish state dict: unexpected keys {', '.join(unknown[:3])}")
    if missing := sorted(expected - set(out)):
        raise DataError(f"not a torchvggish state dict: missing {', '.join(missing[:3])}")
    return out


__all__ = ["CONV_INDICES", "LINEAR_INDICES", "TORCHVGGISH_CHANNELS", "VGGish", "convert_vggish_state_dict"]

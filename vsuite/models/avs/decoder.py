"""Neck and decoder of AVS-bidirectional (model/blocks/*.py, model/neck/neck.py, model/decoder/simple_decoder.py).

Module and attribute names are the official ones (state-dict compatible):
  BasicConv2d       conv (no bias) -> optional BatchNorm -> optional ReLU; official defaults norm=True, act=False
  DimReduce         `reduce` = 1x1 BasicConv2d -> 3x3 -> 3x3 (BN, no activation) to the neck width
  BasicNeck         `conv_list` of one DimReduce per backbone stage
  ResidualBlock     x + ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))))  (ConvBNReLU1, ConvBNReLU2)
  FeatureFusionBlock  out = [prev + resConfUnit1(skip)] -> resConfUnit2 -> nearest x2
                    (the deepest block gets no skip: the official one builds a resConfUnit1 it never calls;
                    it is not built here, so every parameter gets a gradient, as DDP requires)
  SimpleHead        conv3x3 C->C/2 -> nearest x2 -> conv3x3 C/2->C/4 -> ReLU -> conv1x1 C/4->1 (with biases)
  SimpleDecoder     stride-32 feature -> 4 fusion blocks (x16) -> head (x2) = input resolution logits
"""

from __future__ import annotations

import torch
from torch import nn


class BasicConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, padding: int = 0, norm: bool = True,
                 act: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(c_out) if norm else None
        self.act = nn.ReLU() if act else None

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x) if self.act is not None else x


class DimReduce(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.reduce = nn.Sequential(BasicConv2d(c_in, c_out, 1), BasicConv2d(c_out, c_out, 3, padding=1),
                                    BasicConv2d(c_out, c_out, 3, padding=1))

    def forward(self, x):
        return self.reduce(x)


class BasicNeck(nn.Module):
    """Official `basic_neck`: stage features [BT, C_i, H_i, W_i] -> [BT, neck, H_i, W_i]."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        self.conv_list = nn.ModuleList(DimReduce(c, out_channels) for c in in_channels)

    def forward(self, features):
        return [conv(f) for conv, f in zip(self.conv_list, features)]


def upsample_nearest2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 by repetition (the official `upsample_deterministic`)."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.ConvBNReLU1 = BasicConv2d(channels, channels, 3, padding=1, act=True)
        self.ConvBNReLU2 = BasicConv2d(channels, channels, 3, padding=1, act=True)

    def forward(self, x):
        return x + self.ConvBNReLU2(self.ConvBNReLU1(x))


class FeatureFusionBlock(nn.Module):
    def __init__(self, channels: int, with_skip: bool = True):
        super().__init__()
        if with_skip:
            self.resConfUnit1 = ResidualBlock(channels)
        self.resConfUnit2 = ResidualBlock(channels)

    def forward(self, x, skip=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)  # official: an in-place `output += ...`; same values
        return upsample_nearest2(self.resConfUnit2(x))


class SimpleHead(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.output_conv = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1), Upsample2(),
            nn.Conv2d(channels // 2, channels // 4, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(channels // 4, 1, 1))

    def forward(self, x):
        return self.output_conv(x)


class Upsample2(nn.Module):  # a parameter-free slot, index 1 of output_conv as official
    def forward(self, x):
        return upsample_nearest2(x)


class SimpleDecoder(nn.Module):
    """Features at strides 4, 8, 16, 32 (each [BT, C, H/s, W/s]) -> mask logits [BT, 1, H, W]."""

    def __init__(self, channels: int):
        super().__init__()
        self.short_connect_with_decode_module = nn.ModuleList(FeatureFusionBlock(channels, with_skip=i > 0)
                                                              for i in range(4))
        self.head_up_2 = SimpleHead(channels)

    def forward(self, features):
        deep_first = features[::-1]
        x = self.short_connect_with_decode_module[0](deep_first[0])  # stride 32 -> 16
        for block, skip in zip(self.short_connect_with_decode_module[1:], deep_first[1:]):
            x = block(x, skip)  # -> 8, 4, 2
        return self.head_up_2(x)  # -> 1


__all__ = ["BasicConv2d", "BasicNeck", "DimReduce", "FeatureFusionBlock", "ResidualBlock", "SimpleDecoder",
           "SimpleHead", "upsample_nearest2"]

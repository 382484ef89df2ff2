"""Network definitions of the zoo, built from MONAI's.

:class:`UpsampleUNet` is MONAI's :class:`~monai.networks.nets.UNet` with one change in the
decoder: each up-layer is a convolution followed by nearest-neighbour upsampling instead of a
transposed convolution. onnxruntime has no INT8 kernel for ``ConvTranspose`` (a QDQ model
runs it in float between a dequantize and a quantize), and its float one is slow on CPU; a
convolution at the lower resolution then ``Resize`` keeps the whole decoder in INT8 and costs
a quarter of the multiply-adds. Batch norm (folded into the convolutions at export) and ReLU
(fused into the INT8 convolution) are chosen for the same reason.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution, ResidualUnit, UpSample
from monai.networks.nets import ResNet, UNet
from torch import nn

__all__ = ["LabelSegmenter", "UpsampleUNet", "labels_from_logits", "resnet_classifier"]


class UpsampleUNet(UNet):
    """MONAI ``UNet`` whose decoder upsamples with convolution + nearest ``Resize``."""

    def _get_up_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        conv_only = is_top and self.num_res_units == 0
        layer: nn.Module = nn.Sequential(
            Convolution(
                self.dimensions,
                in_channels,
                out_channels,
                strides=1,
                kernel_size=self.up_kernel_size,
                act=self.act,
                norm=self.norm,
                dropout=self.dropout,
                bias=self.bias,
                conv_only=conv_only,
                adn_ordering=self.adn_ordering,
            ),
            UpSample(self.dimensions, scale_factor=strides, mode="nontrainable", interp_mode="nearest", align_corners=None),
        )
        if self.num_res_units > 0:
            residual = ResidualUnit(
                self.dimensions,
                out_channels,
                out_channels,
                strides=1,
                kernel_size=self.kernel_size,
                subunits=1,
                act=self.act,
                norm=self.norm,
                dropout=self.dropout,
                bias=self.bias,
                last_conv_only=is_top,
                adn_ordering=self.adn_ordering,
            )
            layer = nn.Sequential(layer, residual)
        return layer


def resnet_classifier(in_channels: int, classes: int, widths: tuple[int, int, int, int]) -> ResNet:
    """A MONAI 2D ResNet with one basic block per stage and a 7×7 stride-2 stem.

    Widths of 64 and up keep INT8 convolutions busy enough that onnxruntime's VNNI kernels
    pay off (narrow layers are dominated by quantize/reorder overheads).
    """
    return ResNet(
        block="basic",
        layers=[1, 1, 1, 1],
        block_inplanes=list(widths),
        spatial_dims=2,
        n_input_channels=in_channels,
        num_classes=classes,
        conv1_t_size=7,
        conv1_t_stride=2,
    )


def labels_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-voxel class labels as uint8 (argmax over the channel axis): the smallest answer a
    segmentation can give, computed inside the graph so Triton returns 1 byte per voxel."""
    return torch.argmax(logits, dim=1).to(torch.uint8)


class LabelSegmenter(nn.Module):
    """A one-channel-in :class:`UpsampleUNet` (2D or 3D): ``logits`` for training, and a
    ``forward`` that answers uint8 label maps [N, *spatial] for export (argmax in the graph)."""

    def __init__(self, spatial_dims: int, classes: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.unet = UpsampleUNet(
            spatial_dims=spatial_dims,
            in_channels=1,
            out_channels=classes,
            channels=channels,
            strides=(2,) * (len(channels) - 1),
            num_res_units=1,
            norm="batch",
            act="relu",
        )

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.unet(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return labels_from_logits(self.unet(image))

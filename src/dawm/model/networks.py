"""The two network presets (3D, softmax over the classes of :data:`dawm.model.LABELS`).

* ``cpu-small``: MONAI ``UNet``, channels 16-32-64-128-256, 4 stride-2 levels, 2 residual units per
  level, instance norm: about 4.8 M parameters; input sizes divisible by 16.
* ``gpu``: MONAI ``DynUNet`` sized like nnU-Net's 3D full-resolution network (filters 32..320, 6
  levels, 5 stride-2 levels, instance norm, leaky ReLU): about 31 M parameters; input sizes
  divisible by 32; optional deep supervision (2 extra heads, training only).
* ``tiny``: MONAI ``UNet`` 8-16-32-64, 3 stride-2 levels, 1 residual unit: about 0.1 M parameters,
  for smoke tests; input sizes divisible by 8.
"""

from __future__ import annotations

import torch
from monai.networks.nets import DynUNet, UNet

#: Size every spatial input dimension must be a multiple of.
DIVISOR = {"cpu-small": 16, "gpu": 32, "tiny": 8}


def build_network(preset: str, in_channels: int, out_channels: int = 3, *, deep_supervision: bool = False) -> torch.nn.Module:
    """A freshly initialised network of ``preset`` mapping (B, in_channels, X, Y, Z) to logits
    (B, out_channels, X, Y, Z) (in training with deep supervision: (B, 1 + 2, out_channels, X, Y, Z))."""
    if preset == "cpu-small":
        return UNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=(16, 32, 64, 128, 256),
            strides=(2, 2, 2, 2),
            num_res_units=2,
            norm="instance",
        )
    if preset == "tiny":
        return UNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=(8, 16, 32, 64),
            strides=(2, 2, 2),
            num_res_units=1,
            norm="instance",
        )
    if preset == "gpu":
        return DynUNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=[3] * 6,
            strides=[1, 2, 2, 2, 2, 2],
            upsample_kernel_size=[2] * 5,
            filters=[32, 64, 128, 256, 320, 320],
            norm_name="instance",
            act_name=("leakyrelu", {"negative_slope": 0.01, "inplace": True}),
            deep_supervision=deep_supervision,
            deep_supr_num=2,
            res_block=False,
        )
    raise ValueError(f"unknown preset {preset!r} (cpu-small or gpu)")


def n_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

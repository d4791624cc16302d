"""GN-LeNet (Hsieh et al., 2020): 3 x [conv 5x5 same -> GroupNorm(2) -> ReLU -> maxpool 2] + Linear."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import ClassifierSpec
from .spec import seeded_module

CHANNELS = (32, 32, 64)
KERNEL = 5
GROUPS = 2


class GNLeNet(nn.Module):
    """Reference module. Input float32 (B, C, S, S); output logits float32 (B, num_classes)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, s = in_channels, image_size
        for out in CHANNELS:
            layers += [
                nn.Conv2d(c, out, KERNEL, padding=KERNEL // 2),
                nn.GroupNorm(GROUPS, out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c, s = out, s // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * s * s, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(x).flatten(1))
        return logits


class GNLeNetSpec(ClassifierSpec):
    """GN-LeNet on (C, S, S) images: 89,834 parameters for CIFAR-10 (3x32x32), 83,754 for Fashion-MNIST (1x28x28)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        self.name = "gn-lenet"
        self.sequence_targets = False
        self.pad_index = None
        self._template = self.module(0)
        self.layout = self._layout_of(self._template)

    def module(self, seed: int = 0) -> nn.Module:
        return seeded_module(
            lambda: GNLeNet(self.in_channels, self.image_size, self.num_classes), seed
        )

    def template(self) -> nn.Module:
        return self._template

    def batched_logits(self, P: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """All nodes at once as ONE grouped convolution (node i = channel group i).

        ``P``: name -> (n, *shape) parameter tensors; ``x``: float32 (n, B, C, S, S) per-node
        batches, or (B, C, S, S) shared by every node. Returns logits float32 (n, B, classes).
        """
        n = P["classifier.weight"].shape[0]
        if x.dim() == 4:
            B = x.shape[0]
            h = x.repeat(1, n, 1, 1)
        else:
            B = x.shape[1]
            h = x.transpose(0, 1).reshape(B, n * x.shape[2], *x.shape[3:])
        for j in range(len(CHANNELS)):
            conv, norm = f"features.{4 * j}", f"features.{4 * j + 1}"
            w = P[f"{conv}.weight"]
            h = F.conv2d(
                h,
                w.reshape(n * w.shape[1], *w.shape[2:]),
                P[f"{conv}.bias"].reshape(-1),
                padding=KERNEL // 2,
                groups=n,
            )
            # GroupNorm with 2 groups per node == 2n consecutive channel groups over the stacked nodes.
            h = F.group_norm(
                h, GROUPS * n, P[f"{norm}.weight"].reshape(-1), P[f"{norm}.bias"].reshape(-1)
            )
            h = F.max_pool2d(F.relu(h), 2)
        feats = h.reshape(B, n, -1).transpose(0, 1)  # (n, B, features), per-node flatten order
        return torch.baddbmm(
            P["classifier.bias"].unsqueeze(1), feats, P["classifier.weight"].transpose(1, 2)
        )

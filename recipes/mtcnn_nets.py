"""MTCNN's P-, R- and O-nets (Zhang et al. 2016), the weights ``facenet-pytorch`` ships in its package data.

``facenet_pytorch`` itself cannot be imported beside torch 2.13 (it imports torchvision, pinned to an old
torch), so the three small modules are re-implemented here with the same layer names, shapes and forward
pass as ``facenet_pytorch/models/mtcnn.py`` (v2.6.0); ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` load
into them with ``strict=True``. ``tests/backends/test_mtcnn.py`` checks them against the upstream code.

* ``pnet``: fully convolutional proposal net; any ``(N, 3, H, W)`` with H, W >= 12; outputs
  ``boxes_reg (N, 4, h, w)`` and ``face_prob (N, 2, h, w)``.
* ``rnet``: refine net on ``(N, 3, 24, 24)`` crops; ``boxes_reg (N, 4)``, ``face_prob (N, 2)``.
* ``onet``: output net on ``(N, 3, 48, 48)`` crops; ``boxes_reg (N, 4)``, ``landmarks (N, 10)``,
  ``face_prob (N, 2)``.

Inputs are RGB crops normalised as facenet-pytorch does: ``(pixel - 127.5) / 128``, so in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors, require_file
from backends.device import resolve_device
from backends.errors import ModelLoadError

NETS = ("pnet", "rnet", "onet")
INPUT_NAMES = ["image"]
OUTPUT_NAMES = {
    "pnet": ["boxes_reg", "face_prob"],
    "rnet": ["boxes_reg", "face_prob"],
    "onet": ["boxes_reg", "landmarks", "face_prob"],
}


def build(net: str) -> Any:
    """The untrained ``nn.Module`` for ``net`` (``pnet``, ``rnet``, ``onet``): the torch factory."""
    from torch import nn

    if net not in NETS:
        raise ValueError(f"unknown MTCNN net '{net}' (accepted: {', '.join(NETS)})")

    class PNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
            self.prelu1 = nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
            self.prelu2 = nn.PReLU(16)
            self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
            self.prelu3 = nn.PReLU(32)
            self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
            self.softmax4_1 = nn.Softmax(dim=1)
            self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

        def forward(self, x: Any) -> tuple[Any, Any]:
            x = self.prelu1(self.conv1(x))
            x = self.pool1(x)
            x = self.prelu2(self.conv2(x))
            x = self.prelu3(self.conv3(x))
            return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))

    class RNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
            self.prelu1 = nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
            self.prelu2 = nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
            self.prelu3 = nn.PReLU(64)
            self.dense4 = nn.Linear(576, 128)
            self.prelu4 = nn.PReLU(128)
            self.dense5_1 = nn.Linear(128, 2)
            self.softmax5_1 = nn.Softmax(dim=1)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x: Any) -> tuple[Any, Any]:
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
            return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))

    class ONet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
            self.prelu1 = nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
            self.prelu2 = nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
            self.prelu3 = nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
            self.prelu4 = nn.PReLU(128)
            self.dense5 = nn.Linear(1152, 256)
            self.prelu5 = nn.PReLU(256)
            self.dense6_1 = nn.Linear(256, 2)
            self.softmax6_1 = nn.Softmax(dim=1)
            self.dense6_2 = nn.Linear(256, 4)
            self.dense6_3 = nn.Linear(256, 10)

        def forward(self, x: Any) -> tuple[Any, Any, Any]:
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x))
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
            return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))

    return {"pnet": PNet, "rnet": RNet, "onet": ONet}[net]().eval()


class MTCNNNet(PackageModel):
    """Reference model class: one MTCNN net loaded from facenet-pytorch's ``<net>.pt`` state dict.

    The net is the ``variant`` keyword the pipeline passes (``pnet``/``rnet``/``onet``), or ``net=``; a
    folder holding a single ``*.pt`` needs neither.
    """

    backend = "torch"

    def __init__(self, module: Any, net: str, device: str) -> None:
        self.module = module
        self.net = net
        self.device = device

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, *, device: str = "cpu", **kwargs: Any
    ) -> MTCNNNet:
        import torch

        path = Path(model_name_or_path)
        net = kwargs.get("net") or kwargs.get("variant")
        if net not in NETS:
            found = sorted(p.stem for p in path.glob("*.pt") if p.stem in NETS)
            if len(found) != 1:
                raise ModelLoadError(
                    f"{path}: say which MTCNN net to load (net= or variant=: one of {', '.join(NETS)}); "
                    f"found {found or 'none'}"
                )
            net = found[0]
        weights = require_file(path, f"{net}.pt", "mtcnn")
        device = resolve_device(device)
        module = build(net)
        try:
            module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        except (RuntimeError, OSError) as exc:
            raise ModelLoadError(f"{weights} is not an MTCNN {net} state dict: {exc}") from exc
        return cls(module.to(device), net, device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(inputs["image"], dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            outputs = self.module(x)
        return {n: o.cpu().numpy() for n, o in zip(OUTPUT_NAMES[self.net], outputs, strict=True)}

    def torch_module(self) -> tuple[Any, list[str], list[str]]:
        return self.module, list(INPUT_NAMES), list(OUTPUT_NAMES[self.net])

    def torch_factory(self) -> tuple[str, dict[str, Any]]:
        """How the torch backend rebuilds :meth:`torch_module` without this class's weights file."""
        return "mtcnn_nets:build", {"net": self.net}

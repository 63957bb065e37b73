"""A user's own module, as someone packaging their model would write it: MTCNN's O-net (48x48 face crops ->
box offsets, 5 landmarks, face probability), whose trained weights facenet-pytorch ships as a plain
``onet.pt`` state dict. Nothing here comes from weightpack."""

from __future__ import annotations

import torch
from torch import nn


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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


def build_onet() -> nn.Module:
    """A factory function returning the module (the other form ``[model] factory`` accepts)."""
    return ONet().eval()


class TinyVAD(nn.Module):
    """A recurrent net shaped like Silero VAD's ONNX twin: samples ``[N, 64]``, its state ``[2, N, 16]``
    (batch on axis 1) in and out, and the sample rate as a Python int."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(64, 16)
        self.rnn = nn.GRU(16, 16, num_layers=2)
        self.head = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor, state: torch.Tensor, sr: int):
        h = torch.relu(self.encoder(x * (sr / 16000.0)))
        out, state_n = self.rnn(h.unsqueeze(0), state)
        return torch.sigmoid(self.head(out[0])), state_n


class TinyStreamingVAD(nn.Module):
    """The same net keeping its state inside, as Silero VAD's TorchScript twin does: two calls with the same
    samples differ; ``reset_states()`` starts again."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyVAD()
        self._state = torch.zeros(0)

    @torch.jit.export
    def reset_states(self) -> None:
        self._state = torch.zeros(0)

    def forward(self, x: torch.Tensor, sr: int) -> torch.Tensor:
        if self._state.numel() == 0:
            self._state = torch.zeros(2, x.shape[0], 16)
        prob, state = self.net(x, self._state, sr)
        self._state = state
        return prob

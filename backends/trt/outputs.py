"""Output buffers of a TensorRT engine. An output whose shape depends on the data (NonZero, NMS, a
dynamic slice) has ``-1`` in ``context.get_tensor_shape`` until the engine has run: there is no shape to
allocate before execution, so TensorRT asks an ``IOutputAllocator`` for memory while it runs
(``reallocate_output_async``, given the bytes it needs) and reports the final shape (``notify_shape``).

:func:`needs_allocator` decides per output (pure); :class:`OutputBuffers` is the allocator's logic (a
growing device buffer per output, a tensor of the notified shape afterwards), kept apart from TensorRT's
trampoline class so it is tested on the CPU; :func:`make_allocator` binds it to ``trt.IOutputAllocator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def needs_allocator(shape: Sequence[int]) -> bool:
    """Whether an output of ``shape`` (``context.get_tensor_shape`` after the input shapes are set) must be
    allocated while the engine runs: some extent is still unknown (``-1``)."""
    return any(int(d) < 0 for d in shape)


class OutputBuffers:
    """Device memory for data-dependent outputs: one buffer per tensor, grown to what TensorRT asks for
    and reused while large enough; the shape TensorRT notifies makes the output tensor."""

    def __init__(self, device: str, dtypes: dict[str, Any]) -> None:
        self.device = device
        self.dtypes = dtypes
        self.buffers: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def reallocate(self, name: str, size: int) -> int:
        """A device address with at least ``size`` bytes for output ``name`` (never 0: TensorRT treats a
        null address as a failed allocation, even for an empty output)."""
        import torch

        current = self.buffers.get(name)
        if current is None or current.numel() < max(int(size), 1):
            current = torch.empty(max(int(size), 1), dtype=torch.uint8, device=self.device)
            self.buffers[name] = current
        return int(current.data_ptr())

    def notify(self, name: str, shape: Sequence[int]) -> None:
        self.shapes[name] = tuple(int(d) for d in shape)

    def tensor(self, name: str) -> Any:
        """Output ``name`` as a tensor of its notified shape and its dtype, viewing the buffer."""
        import torch

        if name not in self.shapes or name not in self.buffers:
            raise RuntimeError(f"TensorRT did not report output '{name}' (no allocation or shape)")
        dtype = self.dtypes[name]
        count = 1
        for extent in self.shapes[name]:
            count *= extent
        nbytes = count * torch.empty(0, dtype=dtype).element_size()
        return self.buffers[name][:nbytes].view(dtype).view(self.shapes[name])


def make_allocator(trt: Any, buffers: OutputBuffers) -> Any:
    """A ``trt.IOutputAllocator`` serving ``buffers`` (both the TensorRT 10 and 11 callbacks:
    ``reallocate_output_async`` with the stream, and the older ``reallocate_output``)."""

    class _Allocator(trt.IOutputAllocator):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)

        def reallocate_output(self, tensor_name: str, memory: int, size: int, alignment: int) -> int:
            return buffers.reallocate(tensor_name, size)

        def reallocate_output_async(
            self, tensor_name: str, memory: int, size: int, alignment: int, stream: int
        ) -> int:
            return buffers.reallocate(tensor_name, size)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            buffers.notify(tensor_name, tuple(shape))

    return _Allocator()

"""The TensorRT decisions of issue 16 as pure functions, tested without a GPU or TensorRT: compatibility
(lean runtime), host code, profile shapes from the recipe, the input-shape check, precision on TensorRT 10
vs 11, and the stream choice. tests/gpu/test_gpu_fixes.py exercises the real thing on a GPU box."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from backends.errors import (
    BackendError,
    BrokenInstallError,
    ExportError,
    InputMismatchError,
    ModelLoadError,
    OptionError,
    WeightpackError,
)
from backends.trt.compat import LocalGPU, host_code_setting, load_plan
from backends.trt.precision import precision_plan
from backends.trt.shapes import batch_range, resolve_profile, shape_problem
from backends.trt.streams import is_default_stream
from packager.build import dim_ranges
from packager.recipes import InputsRecipe

BUILT = {
    "trt_version": "10.3.0.26",
    "cuda_device_cc": "9.0",
    "cuda_device_type": "NVIDIA H200",
    "hardware_compatibility": "none",
}
H200 = "NVIDIA H200"

# ---- compatibility and the lean runtime ---------------------------------------------------------------


def test_version_compatible_engine_embeds_a_lean_runtime_so_needs_host_code() -> None:
    plan = load_plan({**BUILT, "version_compatible": True}, LocalGPU("10.8.0", "9.0", H200))
    assert plan.host_code_allowed and plan.lean_runtime_of is None
    assert not load_plan(BUILT, LocalGPU("10.3.0.26", "9.0", H200)).host_code_allowed


def test_lean_runtime_excluded_needs_the_building_versions_lean_runtime_elsewhere() -> None:
    """With EXCLUDE_LEAN_RUNTIME a newer TensorRT cannot load the plan with a plain Runtime: it needs the
    building version's lean runtime loaded first (main accepted any newer 10.x)."""
    config = {**BUILT, "version_compatible": True, "exclude_lean_runtime": True}
    with pytest.raises(ModelLoadError, match=r"lean runtime excluded.*TensorRT 10\.3\.0\.26's lean runtime"):
        load_plan(config, LocalGPU("10.8.0", "9.0", H200))
    plan = load_plan(config, LocalGPU("10.8.0", "9.0", H200), lean_runtime_available=True)
    assert plan.lean_runtime_of == "10.3.0.26" and not plan.host_code_allowed
    same = load_plan(config, LocalGPU("10.3.0.26", "9.0", H200))  # the building version loads it itself
    assert same.lean_runtime_of is None and not same.host_code_allowed


def test_version_compatible_runs_on_later_majors_never_older() -> None:
    config = {**BUILT, "version_compatible": True}
    assert load_plan(config, LocalGPU("11.4.0", "9.0", H200)).host_code_allowed
    with pytest.raises(ModelLoadError, match=r"runs on TensorRT >= 10\.3\.0\.26"):
        load_plan(config, LocalGPU("10.2.0", "9.0", H200))
    with pytest.raises(ModelLoadError, match=r"need TensorRT >= 8\.6"):
        load_plan({**config, "trt_version": "8.5.3"}, LocalGPU("10.2.0", "9.0", H200))


def test_host_code_is_allowed_only_when_vouched_for() -> None:
    plan = load_plan({**BUILT, "version_compatible": True}, LocalGPU("10.8.0", "9.0", H200))
    assert host_code_setting(plan, caller_allows=True) is True
    with pytest.raises(ModelLoadError, match="engine_host_code_allowed=True"):
        host_code_setting(plan, caller_allows=False)
    plain = load_plan(BUILT, LocalGPU("10.3.0.26", "9.0", H200))
    assert host_code_setting(plain, caller_allows=True) is False  # never on without a reason


def test_the_pipeline_passes_the_host_code_flag_for_trt_only() -> None:
    from backends.registry import get_backend

    assert get_backend("trt").load_kwargs == {"engine_host_code_allowed": True}
    assert get_backend("onnx").load_kwargs == {} and get_backend("torch").load_kwargs == {}
    # the pack's verification, the nightly suite and `pack compare` runs all load through this
    from backends.registry import load_kwargs_for

    assert load_kwargs_for("trt") == {"engine_host_code_allowed": True}
    assert load_kwargs_for("onnx") == {} and load_kwargs_for("no-such") == {} and load_kwargs_for(None) == {}


# ---- profile shapes -----------------------------------------------------------------------------------


def test_text_recipe_gives_the_sequence_axis_a_range() -> None:
    """Main fixed every non-batch axis at the sample's size: a batch padded to another length failed."""
    spec = InputsRecipe(kind="text", texts=("a", "b"), max_length=64)
    inputs = {"input_ids": np.ones((8, 13), np.int64), "attention_mask": np.ones((8, 13), np.int64)}
    ranges = dim_ranges(spec, inputs)
    assert ranges == {"input_ids.1": (1, 13, 64), "attention_mask.1": (1, 13, 64)}
    low, opt, high = resolve_profile("input_ids", [-1, -1], (8, 13), (1, 8, 16), ranges)
    assert (low, opt, high) == ([1, 1], [8, 13], [16, 64])


def test_tensor_recipe_fixes_non_batch_axes_at_its_declared_shape() -> None:
    """An integer tensor input is exported with dynamic non-batch axes; its recipe shape is the range."""
    from packager.recipes import TensorInput

    spec = InputsRecipe(kind="tensor", tensors=[TensorInput("ids", [2, 10], "int64", 0, 100)])
    ranges = dim_ranges(spec, {"ids": np.ones((2, 10), np.int64)})
    assert ranges == {"ids.1": (10, 10, 10)}
    assert resolve_profile("ids", [-1, -1], (2, 10), (1, 2, 4), ranges) == ([1, 10], [2, 10], [4, 10])
    # a shape set: the engine's profile covers every declared size
    sets = TensorInput("ids", [2, 16], "int64", 0, 100, shapes=[[2, 16], [2, 8], [2, 32]])
    assert dim_ranges(InputsRecipe(kind="tensor", tensors=[sets]), {}) == {"ids.1": (8, 16, 32)}


def test_recipe_option_overrides_and_static_axes_stay() -> None:
    low, _, high = resolve_profile("image", [-1, 3, 48, 48], (8, 3, 48, 48), (1, 8, 16), {})
    assert low == [1, 3, 48, 48] and high == [16, 3, 48, 48]
    with pytest.raises(ExportError, match=r"axis 1 of 'image' is fixed at 3"):
        resolve_profile("image", [-1, 3, 48, 48], (8, 3, 48, 48), (1, 8, 16), {"image.1": [1, 2, 4]})


def test_dynamic_axis_without_a_range_is_refused_at_export() -> None:
    with pytest.raises(
        ExportError, match=r"axis 1 of input 'x' is dynamic.*dim_ranges = \{.x\.1. = \[min, opt, max\]\}"
    ):
        resolve_profile("x", [-1, -1], (2, 7), (1, 2, 4), {})
    with pytest.raises(ExportError, match=r"1 <= min <= opt <= max"):
        resolve_profile("x", [-1, -1], (2, 7), (1, 2, 4), {"x.1": [5, 2, 9]})


def test_shape_outside_the_profile_names_input_axis_and_range() -> None:
    assert shape_problem("input_ids", (8, 30), [1, 1], [16, 64]) is None
    problem = shape_problem("input_ids", (8, 80), [1, 1], [16, 64])
    assert (
        problem is not None
        and "input 'input_ids' axis 1 is 80, outside the engine's profile [1, 64]" in problem
    )
    batch = shape_problem("input_ids", (32, 8), [1, 1], [16, 64])
    assert batch is not None and "batch is 32" in batch
    assert "has 3 axes" in (shape_problem("x", (1, 2, 3), [1, 1], [2, 2]) or "")


def test_the_profile_takes_every_batch_size_the_run_feeds() -> None:
    """Main's max batch was max(16, opt): a recipe with [bench] batch_sizes = [1, 32] failed at 32."""
    assert batch_range(8, [1, 32]) == (1, 8, 32)
    assert batch_range(8, []) == (1, 8, 16)  # a consumer's batch sizes are unknown: room up to 16
    assert batch_range(8, [2, 4], min_batch=2, max_batch=8, opt_batch=4) == (2, 4, 8)
    assert batch_range(4, [4], static=4) == (4, 4, 4)


def test_a_range_that_leaves_out_a_run_batch_size_is_bad_input() -> None:
    with pytest.raises(
        OptionError, match=r"max_batch_size.*\[1, 16\] leaves out batch size\(s\) \[32\]"
    ) as info:
        batch_range(8, [1, 32], max_batch=16)
    assert info.value.exit_code == 2 and "accepted: a range covering" in str(info.value)
    with pytest.raises(OptionError, match=r"min_batch_size.*\[2, 16\] leaves out batch size\(s\) \[1\]"):
        batch_range(8, [1], min_batch=2)
    with pytest.raises(
        OptionError, match=r"static_batch_size.*is 4, but the run feeds batch size\(s\) \[1, 8\]"
    ):
        batch_range(4, [1, 8], static=4)
    with pytest.raises(OptionError, match=r"opt_batch_size.*32 is outside \[1, 16\]"):
        batch_range(8, [1], opt_batch=32, max_batch=16)


def test_the_exporter_takes_the_batch_sizes_from_the_request() -> None:
    """The recipe's [bench] batch_sizes reach the exporter as ``request.batch_sizes``."""
    from types import SimpleNamespace

    from backends.trt.exporter import _batch_range
    from backends.trt.spec import SPEC

    options = SPEC.parse_options({})
    sample = {"image": np.zeros((8, 3, 48, 48), np.float32)}
    request = SimpleNamespace(sample_inputs=sample, batch_sizes=(1, 32))
    assert _batch_range(request, options) == (1, 8, 32)
    assert _batch_range(SimpleNamespace(sample_inputs=sample), options) == (1, 8, 16)
    narrow = SPEC.parse_options({"max_batch_size": 16})
    with pytest.raises(
        OptionError, match=r"field 'backends\.trt\.max_batch_size': 16: .* leaves out .*\[32\]"
    ):
        _batch_range(SimpleNamespace(sample_inputs=sample, batch_sizes=(1, 32)), narrow)


# ---- running an engine: typed errors, recorded as the package's failed check --------------------------


class DataType(enum.Enum):
    """TensorRT 10.16/11.4's ``trt.DataType`` members (scripts/check_trt_api.py lists them)."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9
    FP4 = 10
    E8M0 = 11


class _FakeTrt:
    """What TrtModel.run uses of the tensorrt module; ``nptype`` as the real one: numpy types only."""

    NP: ClassVar[dict[str, type]] = {
        "FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
    }  # fmt: skip

    class IOutputAllocator:
        def __init__(self) -> None:
            pass

    @classmethod
    def nptype(cls, dtype: DataType) -> type:
        if dtype.name not in cls.NP:
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return cls.NP[dtype.name]


class _FakeEngine:
    def __init__(self, dtypes: dict[str, DataType] | None = None) -> None:
        self.dtypes = dtypes or {}

    def get_tensor_dtype(self, name: str) -> DataType:
        return self.dtypes.get(name, DataType.FLOAT)


class _FakeContext:
    def __init__(self, accept: bool = True, execute: bool = True, found: int | None = None) -> None:
        self.accept, self.execute = accept, execute
        self.found = found  # a data-dependent output: its rows are known only after execution
        self.addresses: dict[str, int] = {}
        self.allocators: dict[str, object] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shape = shape
        return self.accept

    def set_tensor_address(self, name: str, address: int) -> None:
        self.addresses[name] = address

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (-1, 4) if self.found is not None else (self.shape[0], 16)

    def set_output_allocator(self, name: str, allocator: object) -> bool:
        self.allocators[name] = allocator
        return True

    def execute_async_v3(self, stream: int) -> bool:
        """As TensorRT does for an output allocator: ask for memory, then report the shape."""
        for name, allocator in self.allocators.items():
            rows = int(self.found or 0)
            address = allocator.reallocate_output_async(name, 0, rows * 4 * 4, 256, stream)
            assert address != 0
            allocator.notify_shape(name, (rows, 4))
        return self.execute


class _FakeStream:
    cuda_stream = 0x55D1C0DE0000

    def synchronize(self) -> None:
        pass


def _cpu_model(context: _FakeContext, dtypes: dict[str, DataType] | None = None):
    """TrtModel.run on the CPU: engine, context and tensorrt replaced by stand-ins, torch tensors on cpu."""
    from backends.trt.model import TrtModel

    config = {
        "input_names": ["image"],
        "output_names": ["landmarks"],
        "inputs": [{"name": "image", "min": [1, 3, 48, 48], "max": [16, 3, 48, 48]}],
    }
    model = TrtModel(_FakeEngine(dtypes), context, config, Path("pkg"), "cpu", _FakeStream())
    model._trt = _FakeTrt
    return model


def test_a_batch_outside_the_profile_is_a_typed_failed_check() -> None:
    """Main raised a plain ValueError: verification (which records WeightpackErrors) let it through and
    the whole pack aborted with no report."""
    from backends.trt.shapes import EngineInputError

    model = _cpu_model(_FakeContext())
    assert model.run({"image": np.zeros((8, 3, 48, 48), np.float32)})["landmarks"].shape == (8, 16)
    with pytest.raises(
        EngineInputError, match=r"input 'image' batch is 32, outside the engine's profile \[1, 16\]"
    ) as info:
        model.run({"image": np.zeros((32, 3, 48, 48), np.float32)})
    assert isinstance(info.value, InputMismatchError) and isinstance(info.value, WeightpackError)
    assert info.value.exit_code == 1  # a failed check of this package, not bad input of the run
    with pytest.raises(EngineInputError, match=r"feed has no input 'image'.*fed: \['pixels'\]"):
        model.run({"pixels": np.zeros((8, 3, 48, 48), np.float32)})


def test_a_shape_tensorrt_refuses_or_a_failed_execution_is_typed() -> None:
    from backends.trt.model import TrtExecutionError
    from backends.trt.shapes import EngineInputError

    with pytest.raises(
        EngineInputError,
        match=r"TensorRT refused shape \[8, 3, 48, 48\] for input 'image' \(profile min \[1, 3, 48, 48\]",
    ):
        _cpu_model(_FakeContext(accept=False)).run({"image": np.zeros((8, 3, 48, 48), np.float32)})
    with pytest.raises(
        TrtExecutionError, match=r"execute_async_v3 failed .*'image': \[8, 3, 48, 48\]"
    ) as info:
        _cpu_model(_FakeContext(execute=False)).run({"image": np.zeros((8, 3, 48, 48), np.float32)})
    assert isinstance(info.value, BackendError) and info.value.exit_code == 1


# ---- precision: TensorRT 10 vs 11 ---------------------------------------------------------------------


def test_tensorrt_10_fp16_uses_the_builder_flag() -> None:
    plan = precision_plan("10.13.0", "fp16", has_fp16_flag=True)
    assert plan.builder_fp16 and not plan.strongly_typed and plan.onnx_quantization is None
    assert not precision_plan("10.13.0", "fp32", has_fp16_flag=True).builder_fp16


def test_tensorrt_11_is_strongly_typed_fp16_comes_from_the_graph() -> None:
    """11 removed BuilderFlag.FP16 and platform_has_fast_fp16: main would raise AttributeError."""
    plan = precision_plan("11.4.0", "fp16", has_fp16_flag=False)
    assert plan.strongly_typed and not plan.builder_fp16 and plan.onnx_quantization == "fp16"
    fp32 = precision_plan("11.4.0", "fp32", has_fp16_flag=False)
    assert fp32.strongly_typed and fp32.onnx_quantization is None


def test_unknown_tensorrt_major_is_refused_up_front() -> None:
    with pytest.raises(
        BrokenInstallError, match=r"TensorRT 12\.0\.0 is not supported .*'weightpack\[gpu\]' \(TensorRT 10"
    ) as info:
        precision_plan("12.0.0", "fp32", has_fp16_flag=False)
    assert info.value.exit_code == 3
    with pytest.raises(ExportError, match="accepted: fp32, fp16"):
        precision_plan("10.13.0", "int8", has_fp16_flag=True)


# ---- stream -------------------------------------------------------------------------------------------


def test_default_stream_handles_are_refused() -> None:
    """TensorRT on the legacy default stream (main used torch's current stream, i.e. that one) adds
    device-wide synchronisations; a dedicated stream has a non-default handle."""
    assert is_default_stream(0) and is_default_stream(1) and is_default_stream(2)
    assert not is_default_stream(0x55D1C0DE0000)


# ---- issue 24: dtypes, data-dependent outputs, staged inputs, typed None returns ----------------------


def test_every_tensorrt_dtype_maps_to_torch_or_is_refused_by_name() -> None:
    """Point 5: main mapped through ``trt.nptype`` (numpy's types only): a bf16 or fp8 tensor raised
    TypeError. Every DataType member of TensorRT 10.16 and 11.4 now has a torch dtype, or (packed 4-bit)
    a ModelLoadError naming it."""
    import torch

    from backends.trt.dtypes import torch_dtype, torch_dtype_name

    names = {d.name: torch_dtype_name(d) for d in DataType if d.name not in ("FP4", "INT4")}
    assert names["BF16"] == "bfloat16" and names["FP8"] == "float8_e4m3fn" and names["HALF"] == "float16"
    assert all(hasattr(torch, n) for n in names.values())
    assert torch_dtype(DataType.BF16) is torch.bfloat16
    for packed in (DataType.FP4, DataType.INT4):
        with pytest.raises(ModelLoadError, match=rf"tensor 'logits' has dtype {packed.name}, packed two"):
            torch_dtype_name(packed, "logits")
    with pytest.raises(TypeError, match="equivalent numpy datatype"):  # what main ran into
        _FakeTrt.nptype(DataType.BF16)


def test_a_bf16_output_is_allocated_as_bf16() -> None:
    import torch

    model = _cpu_model(_FakeContext(), {"landmarks": DataType.BF16})
    out = model.run({"image": np.ones((2, 3, 48, 48), np.float32)})
    assert out["landmarks"].dtype == torch.bfloat16 and tuple(out["landmarks"].shape) == (2, 16)


def test_a_data_dependent_output_gets_an_output_allocator() -> None:
    """Point 6: ``get_tensor_shape`` is (-1, 4) before execution; main allocated ``torch.empty((-1, 4))``
    and failed. Now TensorRT's allocator callbacks size the buffer and report the shape (3 rows here)."""
    context = _FakeContext(found=3)
    model = _cpu_model(context)
    out = model.run({"image": np.ones((2, 3, 48, 48), np.float32)})
    assert tuple(out["landmarks"].shape) == (3, 4) and "landmarks" in context.allocators
    from backends.trt.outputs import needs_allocator

    assert needs_allocator((-1, 4)) and not needs_allocator((8, 16))
    assert "landmarks" not in context.addresses  # no address set for an output of unknown size
    allocator = context.allocators["landmarks"]
    context.found = 5  # another batch finds more: the buffer grows, the allocator is the same
    assert tuple(model.run({"image": np.ones((2, 3, 48, 48), np.float32)})["landmarks"].shape) == (5, 4)
    assert context.allocators["landmarks"] is allocator
    context.found = 0  # nothing found: an empty output, and still a non-null address for TensorRT
    assert tuple(model.run({"image": np.ones((2, 3, 48, 48), np.float32)})["landmarks"].shape) == (0, 4)


def test_output_buffers_grow_and_view_the_notified_shape() -> None:
    import torch

    from backends.trt.outputs import OutputBuffers

    buffers = OutputBuffers("cpu", {"boxes": torch.float16})
    first = buffers.reallocate("boxes", 64)
    assert buffers.reallocate("boxes", 32) == first  # large enough: reused
    assert buffers.reallocate("boxes", 1024) != first or buffers.buffers["boxes"].numel() >= 1024
    buffers.notify("boxes", (2, 3))
    view = buffers.tensor("boxes")
    assert view.dtype == torch.float16 and tuple(view.shape) == (2, 3)
    with pytest.raises(RuntimeError, match="did not report output 'scores'"):
        buffers.tensor("scores")


def test_staged_inputs_are_copied_before_the_device_timer_starts() -> None:
    """Point 7: main copied the feed (a synchronous, pageable host-to-device copy) inside ``run``, between
    the CUDA events: TensorRT's device time included it, the torch rows' kernels-only time did not. The
    harness now stages first and re-records the start event: start, stage, start, run, end, fetch."""
    from bench.cuda_streams import stage_before_start
    from bench.latency import LatencyConfig, measure

    log: list[str] = []

    class Timer:
        description = "spy"

        def record_start(self) -> None:
            log.append("start")

        def record_end(self) -> None:
            log.append("end")

        def elapsed_ms(self) -> float:
            return 1.0

    class Staged:
        def stage(self, inputs):
            log.append("stage")
            return {"staged": inputs}

        def run(self, inputs):
            log.append("run" if "staged" in inputs else "run+copy")
            return inputs

        def fetch(self, outputs):
            log.append("fetch")
            return outputs

    model, timer = Staged(), Timer()
    run = stage_before_start(model, model.run, timer)
    cfg = LatencyConfig(warmup_iters=0, warmup_s=0.0, min_iters=2, min_time_s=0.0, max_time_s=5.0)
    log.clear()
    result = measure(run, [{"x": np.ones(1)}], cfg, device_timer=timer, fetch=model.fetch)
    assert log[:6] == ["start", "stage", "start", "run", "end", "fetch"]
    assert len(result.device_samples_ms) == len(result.samples_ms)
    assert stage_before_start(model, model.run, None) == model.run  # host time only: run copies itself


def test_trt_run_takes_a_staged_feed_without_copying_again() -> None:
    from backends.trt.model import StagedInputs

    context = _FakeContext()
    model = _cpu_model(context)
    staged = model.stage({"image": np.ones((2, 3, 48, 48), np.float32)})
    assert isinstance(staged, StagedInputs)
    model.run(staged)
    assert context.addresses["image"] == staged["image"].data_ptr()  # the staged tensor itself
    from backends.trt.shapes import EngineInputError

    with pytest.raises(EngineInputError, match=r"batch is 32, outside the engine's profile \[1, 16\]"):
        model.stage({"image": np.zeros((32, 3, 48, 48), np.float32)})  # checked when staged


class _Runtime:
    """``trt.Runtime`` as the bindings behave: failures return None, they do not raise."""

    def __init__(self, lean=True, engine=True) -> None:
        self.lean, self.engine = lean, engine
        self.engine_host_code_allowed = False

    def load_runtime(self, path: str):
        return _Runtime(engine=self.engine) if self.lean else None

    def deserialize_cuda_engine(self, data: bytes):
        return "engine" if self.engine else None


def _trt_module(runtime: _Runtime | None):
    from types import SimpleNamespace

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    return SimpleNamespace(__version__="11.4.0.106", Logger=Logger, Runtime=lambda logger: runtime)


def test_none_from_the_tensorrt_runtime_is_a_typed_error() -> None:
    """Point 8: ``Runtime.load_runtime`` returns None when the lean runtime cannot load; main then failed
    with AttributeError on None. Each None is now a ModelLoadError naming the step."""
    from backends.trt.engine import deserialize, execution_context

    plan, engine = b"plan", Path("pkg/engine.plan")
    assert deserialize(_trt_module(_Runtime()), plan, engine=engine, host_code_allowed=False) == "engine"
    lean = "/opt/trt-10.3/libnvinfer_lean.so.10"
    assert deserialize(
        _trt_module(_Runtime()), plan, engine=engine, host_code_allowed=False, lean_runtime_path=lean
    ) == "engine"  # fmt: skip
    with pytest.raises(
        ModelLoadError, match=r"could not load the lean runtime /opt/trt-10\.3/.*of the TensorRT"
    ):
        deserialize(
            _trt_module(_Runtime(lean=False)), plan, engine=engine, host_code_allowed=False,
            lean_runtime_path=lean,
        )  # fmt: skip
    with pytest.raises(
        ModelLoadError, match=r"TensorRT 11\.4\.0\.106 could not deserialize pkg/engine\.plan"
    ):
        deserialize(_trt_module(_Runtime(engine=False)), plan, engine=engine, host_code_allowed=False)
    with pytest.raises(ModelLoadError, match=r"could not create a runtime to load pkg/engine\.plan"):
        deserialize(_trt_module(None), plan, engine=engine, host_code_allowed=False)
    from types import SimpleNamespace

    with pytest.raises(ModelLoadError, match=r"could not create an execution context for pkg/engine\.plan"):
        execution_context(SimpleNamespace(create_execution_context=lambda: None), engine)


# ---- scripts/check_trt_api.py: the scan and the verdict, on a surface written here ----------------------


def test_the_api_check_finds_a_missing_name_and_spares_a_guarded_one(tmp_path: Path) -> None:
    """The check that runs against the real bindings (outside CI) must be able to fail: a name the code
    reads unguarded and the bindings lack is MISSING; one read through hasattr is only reported."""
    import sys

    scripts = str(Path(__file__).resolve().parents[2] / "scripts")
    sys.path.insert(0, scripts)
    try:
        import check_trt_api as api
    finally:
        sys.path.remove(scripts)
    source = tmp_path / "user.py"
    source.write_text(
        "def build(trt):\n"
        "    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))\n"
        "    config = builder.create_builder_config()\n"
        "    if hasattr(trt.BuilderFlag, 'FP16'):\n"
        "        config.set_flag(trt.BuilderFlag.FP16)\n"
        "    config.set_flag(trt.BuilderFlag.STRIP_PLAN)\n"
        "    config.no_such_method()\n"
    )
    surface = {
        "version": "11.4.0.106",
        "module": ["Builder", "BuilderFlag", "DataType", "Logger", "__version__"],
        "classes": {
            "Builder": {"create_builder_config": "IBuilderConfig"},
            "IBuilderConfig": {"set_flag": None},
            "BuilderFlag": {"TF32": None},
            "Logger": {"WARNING": None},
            "DataType": {},
        },
        "enums": {"DataType": ["BF16", "FLOAT", "FP4", "HALF", "INT4", "INT8", "UINT8", "BOOL", "INT32",
                               "INT64", "FP8", "E8M0"]},
    }  # fmt: skip
    use = api.scan([source], surface)
    assert ("BuilderFlag", "FP16") in use.optional
    assert ("IBuilderConfig", "set_flag") in use.members and (
        "IBuilderConfig",
        "no_such_method",
    ) in use.members
    extension = tmp_path / "tensorrt.so"
    extension.write_bytes(b"\0reallocate_output\0")
    lines = api.report(11, surface, ["libnvinfer.so.11"], use, extension)
    missing = lines[-1]
    assert "trt.BuilderFlag.STRIP_PLAN (user.py:6)" in missing and "IBuilderConfig.no_such_method" in missing
    assert "FP16" not in missing and "BuilderFlag.FP16 absent" in "\n".join(lines)
    assert "DataType: 12 members; mapped to torch: 10, refused as packed: FP4, INT4" in "\n".join(lines)

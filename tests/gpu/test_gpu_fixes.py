"""The CUDA side of issue 16's rows (their decisions are tested on the CPU in tests/unit/test_trt_decisions.py
and tests/unit/test_gpu_measurement.py). Skipped without CUDA; TensorRT / onnxruntime-gpu / NVML parts skip
with the reason where the library is missing."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device visible to torch"),
]

from bench import memory  # noqa: E402
from bench.latency import LatencyConfig, measure_model  # noqa: E402
from tests.backends.helpers import export_package, load, mtcnn_dir  # noqa: E402

CFG = LatencyConfig(warmup_iters=5, warmup_s=0.1, min_iters=30, min_time_s=0.3, max_time_s=10.0)


def _needs(module: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(why)


@pytest.fixture(scope="module")
def onet():
    data = mtcnn_dir()
    if data is None:
        pytest.skip("facenet-pytorch is not installed")
    sample = {"image": np.random.default_rng(0).uniform(-1, 1, (8, 3, 48, 48)).astype(np.float32)}
    return data, sample


class BigOutput:
    """A torch-family model whose output (256 MiB) takes far longer to copy to the host than to compute."""

    backend = "torch"

    def __init__(self) -> None:
        self.device = "cuda:0"
        self.x = torch.ones(64 * 2**20, device=self.device)

    def run(self, inputs):
        return {"y": self.x * 2.0}

    def fetch(self, outputs):
        return {k: v.cpu().numpy() for k, v in outputs.items()}

    def infer(self, inputs):
        return self.fetch(self.run(inputs))

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


def test_device_time_excludes_the_host_copy() -> None:
    result = measure_model(BigOutput(), "cuda:0", [{"x": np.ones(1)}], CFG, overhead=False)
    host, dev = np.median(result.samples_ms), np.median(result.device_samples_ms)
    print(f"GPU-TIMING device-time-split host={host:.3f}ms device={dev:.3f}ms")
    assert dev < 0.5 * host  # the 256 MiB device-to-host copy is in host time only


def test_sampler_reads_the_gpu_during_the_timed_loop() -> None:
    result = measure_model(BigOutput(), "cuda:0", [{"x": np.ones(1)}], CFG, overhead=False)
    conditions = result.gpu_conditions
    assert conditions is not None and conditions["samples"] >= 2
    assert conditions["memory_peak_bytes"] and conditions["memory_peak_bytes"] > 256 * 2**20
    print(f"GPU-CONDITIONS {json.dumps(conditions)}")
    if importlib.util.find_spec("pynvml"):
        assert conditions["sm_mhz_max"] and conditions["temperature_c_max"] is not None


def test_device_memory_counts_what_torch_does_not_see() -> None:
    """cudaMemGetInfo deltas see the device's memory whichever library allocated it (onnxruntime's arena,
    TensorRT's activations); here a 512 MiB allocation must show up in the device's used memory."""
    before = memory.device_used_bytes("cuda:0")
    x = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda:0")
    delta = memory.device_delta("cuda:0", before)
    del x
    assert delta["cuda_device_delta_bytes"] >= 512 * 2**20


def test_own_process_is_recognised_by_nvml() -> None:
    _needs("pynvml", "nvidia-ml-py is not installed")
    from bench.environment import nvml_handle_for, nvml_module, nvml_snapshot

    torch.ones(1, device="cuda:0")  # a CUDA context: this process is now on NVML's list
    handle = nvml_handle_for(0)
    assert handle is not None, "NVML could not match torch's cuda:0"
    pynvml = nvml_module()
    from bench.environment import nvml_conditions

    own = nvml_conditions(pynvml, handle)["process_used_bytes"]
    snapshot = nvml_snapshot() or []
    print(f"GPU-NVML own={own} notes={[g.get('process_note') for g in snapshot]}")
    others = [p for g in snapshot for p in g["other_processes"]]
    assert own is not None or others, "this process was neither found nor counted among the others"


def test_onnx_trt_ep_engine_cache_keyed_by_content(tmp_path, onet) -> None:
    import onnxruntime

    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has no TensorrtExecutionProvider here (onnxruntime-gpu not installed)")
    data, sample = onet
    unzipped, result = export_package(
        tmp_path, "onnx", data, sample, reference_class="backends.zoo.mtcnn:MTCNNNet", variant="onet"
    )
    cache = tmp_path / "cache"
    model = load(unzipped, result, device="cuda", tensorrt=True, trt_engine_cache_path=str(cache))
    model.infer(sample)
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1 and any(folders[0].iterdir())


def _trt_onet(tmp_path, onet, **options):
    _needs("tensorrt", "tensorrt is not installed (weightpack[gpu])")
    data, sample = onet
    return export_package(
        tmp_path, "trt", data, sample, options={"max_batch_size": 16, **options},
        reference_class="backends.zoo.mtcnn:MTCNNNet", variant="onet", device="cuda:0",
    )  # fmt: skip


def test_trt_runs_on_its_own_stream_and_timers_use_it(tmp_path, onet) -> None:
    from backends.trt.streams import is_default_stream

    unzipped, result = _trt_onet(tmp_path, onet)
    model = load(unzipped, result, device="cuda")
    assert not is_default_stream(model.stream.cuda_stream)
    timed = measure_model(model, "cuda:0", [onet[1]], CFG, overhead=False)
    assert timed.device_timer == "CUDA events on model.stream" and np.median(timed.device_samples_ms) > 0


def test_trt_shape_outside_profile_names_input_and_range(tmp_path, onet) -> None:
    unzipped, result = _trt_onet(tmp_path, onet)
    model = load(unzipped, result, device="cuda")
    too_big = {"image": np.zeros((32, 3, 48, 48), np.float32)}
    with pytest.raises(
        ValueError, match=r"input 'image' batch is 32, outside the engine's profile \[1, 16\]"
    ):
        model.infer(too_big)


def test_trt_version_compatible_engine_loads_with_host_code_recorded(tmp_path, onet) -> None:
    from backends.errors import ModelLoadError

    unzipped, result = _trt_onet(tmp_path, onet, version_compatible=True)
    with pytest.raises(ModelLoadError, match="engine_host_code_allowed=True"):
        load(unzipped, result, device="cuda")
    model = load(unzipped, result, device="cuda", engine_host_code_allowed=True)
    assert model.load_facts["engine_host_code_allowed"] is True
    assert model.infer(onet[1])["landmarks"].shape[0] == 8


def test_trt_engine_records_the_build_device(tmp_path, onet) -> None:
    unzipped, _ = _trt_onet(tmp_path, onet)
    config = json.loads((unzipped / "trt_config.json").read_text())
    assert config["built_on_device"] == "cuda:0" and "strongly_typed" in config

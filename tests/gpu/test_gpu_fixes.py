"""The CUDA side of issue 16's rows (their decisions are tested on the CPU in tests/unit/test_trt_decisions.py
and tests/unit/test_gpu_measurement.py). Skipped without CUDA; TensorRT / onnxruntime-gpu / NVML parts skip
with the reason where the library is missing."""

from __future__ import annotations

import importlib.util
import json
import os

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
    assert conditions["memory_device_peak_bytes"] and conditions["memory_device_peak_bytes"] > 256 * 2**20
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
    """Exactly one of NVML's processes on this GPU is this one: it is never counted among the others (the
    container bug: NVML's host PID did not match ``os.getpid()``, so our own process was reported as
    another one on the GPU and every latency row warned of a shared GPU)."""
    _needs("pynvml", "nvidia-ml-py is not installed")
    from bench.environment import nvml_conditions, nvml_handle_for, nvml_module, nvml_snapshot
    from bench.gpu_processes import classify_processes, this_process_uses_gpu, uses_nvidia_device

    torch.ones(1, device="cuda:0")  # a CUDA context: this process is now on NVML's list
    torch.cuda.synchronize()
    handle = nvml_handle_for(0)
    assert handle is not None, "NVML could not match torch's cuda:0"
    pynvml = nvml_module()
    index = int(pynvml.nvmlDeviceGetIndex(handle))
    gpu = next(g for g in nvml_snapshot() or [] if g["index"] == index)
    processes, others = gpu["processes"], gpu["other_processes"]
    print(f"GPU-NVML processes={processes} others={others} note={gpu.get('process_note')}")
    if not processes:
        pytest.skip("NVML lists no compute processes on this GPU here (the query is not supported)")
    assert len(others) == len(processes) - 1, (
        f"this process is counted among the other processes: NVML lists {processes}, others {others}"
    )
    _, own, note = classify_processes(processes, os.getpid(), uses_nvidia_device, this_process_uses_gpu())
    print(f"GPU-NVML own={own} sampler_bytes={nvml_conditions(pynvml, handle)['process_used_bytes']}")
    if len(processes) == 1:  # alone on the GPU, ours can always be told
        assert own == processes[0], f"our process {processes[0]} was not recognised as ours ({note})"


def _ort_onet(tmp_path, data, sample, variant: str = "onet"):
    return export_package(
        tmp_path / variant, "onnx", data, sample, reference_class="mtcnn_nets:MTCNNNet",
        variant=variant,
    )  # fmt: skip


def test_onnx_trt_ep_engine_cache_keyed_by_content(tmp_path, onet) -> None:
    """Each package and option set gets its own engine folder, named by the pure function
    (backends.onnx.model.engine_cache_key, tested on the CPU in tests/unit/test_gpu_measurement.py)."""
    import onnxruntime

    from backends.onnx.model import engine_cache_key, engine_versions, package_digests

    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has no TensorrtExecutionProvider here (onnxruntime-gpu not installed)")
    data, sample = onet
    onet_dir, onet_result = _ort_onet(tmp_path, data, sample)
    rnet_sample = {"image": np.random.default_rng(1).uniform(-1, 1, (8, 3, 24, 24)).astype(np.float32)}
    rnet_dir, rnet_result = _ort_onet(tmp_path, data, rnet_sample, "rnet")
    cache = tmp_path / "cache"
    runs = [(onet_dir, onet_result, sample, False), (onet_dir, onet_result, sample, True)]
    runs.append((rnet_dir, rnet_result, rnet_sample, False))
    expected = []
    for unzipped, result, feed, fp16 in runs:
        model = load(
            unzipped, result, device="cuda", tensorrt=True, trt_engine_cache_path=str(cache),
            trt_fp16_enable=fp16,
        )  # fmt: skip
        model.infer(feed)
        options = {"trt_engine_cache_enable": True, "trt_fp16_enable": fp16}
        expected.append(engine_cache_key(package_digests(unzipped), options, engine_versions("cuda:0")))
    folders = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert len(set(expected)) == 3  # other weights, other options: another key
    assert folders == sorted(expected), f"engine folders {folders}, expected one per key {expected}"
    assert all(any((cache / name).iterdir()) for name in folders)  # an engine was cached in each


def _trt_onet(tmp_path, onet, **options):
    _needs("tensorrt", "tensorrt is not installed (weightpack[gpu])")
    data, sample = onet
    return export_package(
        tmp_path, "trt", data, sample, options={"max_batch_size": 16, **options},
        reference_class="mtcnn_nets:MTCNNNet", variant="onet", device="cuda:0",
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
    from backends.trt.shapes import EngineInputError

    with pytest.raises(
        EngineInputError, match=r"input 'image' batch is 32, outside the engine's profile \[1, 16\]"
    ) as info:
        model.infer(too_big)
    assert info.value.exit_code == 1  # a failed check of this package


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

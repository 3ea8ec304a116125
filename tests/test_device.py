"""The device policy: what each device and precision resolves to, and one line for a device that is not there."""
import contextlib
import ctypes
import platform
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from forgetting import device
from forgetting.errors import UsageError
from forgetting.tracking.runs import cache_key

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def keep_the_policy(monkeypatch):
    """``select`` sets the process's policy; each test gets the one it found back."""
    monkeypatch.setattr(device, "_current", device._current)


@pytest.fixture
def one_gpu(monkeypatch):
    """This machine as if it had one bf16 GPU (nothing is placed on it)."""
    monkeypatch.setattr(device, "cuda_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_auto_is_the_cpu_with_fp32_where_there_is_no_gpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_count", lambda: 0)
    policy = device.select("auto", "auto")
    assert policy.device == torch.device("cpu") and policy.precision == "fp32"
    assert policy.tags() == {"device": "cpu", "gpu_name": "none", "compute_precision": "fp32"}
    assert device.select("cpu", "bf16-autocast").precision == "bf16-autocast"


def test_auto_is_the_process_gpu_with_bf16_autocast(one_gpu, monkeypatch):
    assert device.parse_device("auto") == torch.device("cuda", 0)
    assert device.parse_device("cuda") == torch.device("cuda", 0)
    assert device.resolve_precision("auto", torch.device("cuda", 0)) == "bf16-autocast"
    assert device.resolve_precision("fp32", torch.device("cuda", 0)) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert device.resolve_precision("auto", torch.device("cuda", 0)) == "fp32"


@pytest.mark.parametrize("spec, gpus, message", [
    ("cuda:3", 1, r"device='cuda:3' is not available: this machine has 1 CUDA device \(cuda:0..cuda:0\)"),
    ("tpu", 1, "device='tpu' is not one of: auto"),
    ("auto", 2, "gpus=2 is more than this machine's 1 CUDA devices"),
    ("cuda:0", 2, "gpus=2 needs device=auto or cuda"),
    ("cpu", 0, "gpus=0 must be at least 1"),
])
def test_a_device_that_is_not_there_is_one_line(one_gpu, spec, gpus, message):
    with pytest.raises(UsageError, match=message):
        device.select(spec, "auto", gpus)


def test_no_gpu_names_what_is_available(monkeypatch):
    monkeypatch.setattr(device, "cuda_count", lambda: 0)
    with pytest.raises(UsageError, match="device='cuda' is not available: this machine has 0 CUDA devices$"):
        device.parse_device("cuda")
    with pytest.raises(UsageError, match="use device=cpu for CPU processes"):
        device.check_gpus(2, "auto")
    device.check_gpus(2, "cpu")


def test_where_a_stage_runs_is_not_what_it_computes(monkeypatch):
    """``device`` and ``gpus`` stay out of the cache key; the precision ``auto`` resolves to goes in."""
    monkeypatch.setattr(device, "cuda_count", lambda: 0)
    device.select("cpu", "auto")
    params = {"model": "m", "precision": "auto"}
    assert cache_key("train", params | {"device": "cpu", "gpus": 2}, {}) == cache_key("train", params, {})
    monkeypatch.setattr(device, "_current", device.DevicePolicy(torch.device("cpu"), "bf16-autocast"))
    bf16 = cache_key("train", params, {})
    device.select("cpu", "auto")
    assert bf16 != cache_key("train", params, {})


def test_autocast_follows_the_device_and_batches_follow_the_model():
    assert isinstance(device.autocast("fp32", "cpu"), contextlib.nullcontext)
    with device.autocast("bf16-autocast", torch.device("cpu")):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    moved = device.on_device({"ids": torch.ones(2), "name": "x"}, torch.device("cpu"))
    assert moved["name"] == "x" and moved["ids"].device == torch.device("cpu")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_host_memory_is_kept_for_the_next_allocation(monkeypatch):
    class MallocInfo(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                          "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallocInfo
    for name in device.ALLOCATOR_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert device.keep_freed_host_memory()
    mapped = libc.mallinfo2().hblkhd
    block = torch.ones(2**24)  # 64 MB: above the largest block glibc would serve from the heap otherwise
    assert libc.mallinfo2().hblkhd == mapped, "a fresh mmap: freed memory would go back to the system"
    del block
    monkeypatch.setenv("LD_PRELOAD", "libjemalloc.so.2")  # the user's allocator is left alone
    assert not device.keep_freed_host_memory()


def test_fp32_outputs_switch_autocast_off_and_restore_the_matmul_mode():
    matmul = torch.backends.mkldnn.matmul
    before = matmul.fp32_precision
    a, b = torch.randn(8, 64), torch.randn(64, 32)
    with device.autocast("bf16-autocast", "cpu"):
        with device.fp32_outputs("bf16-autocast", "cpu"):
            assert not torch.is_autocast_enabled("cpu") and matmul.fp32_precision == "bf16"
            out = a @ b
        assert torch.is_autocast_enabled("cpu")
    assert out.dtype == torch.float32 and torch.allclose(out, a @ b, atol=1e-2)
    assert matmul.fp32_precision == before
    with device.fp32_outputs("fp32", "cpu"):
        assert matmul.fp32_precision == before


@pytest.mark.parametrize("entry, args", [
    ("evaluate", ["--device", "cuda"]),
    ("train", ["--device", "cuda:3"]),
    ("prune", ["--device", "cuda"]),
])
def test_an_absent_device_stops_the_entry_point_before_any_run(store, tiny_checkpoint_with_tokenizer, entry, args):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, f"entrypoints/{entry}.py", "--model", str(tiny_checkpoint_with_tokenizer),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"error: device={args[1]!r} is not available: this machine has 0 CUDA devices"
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []

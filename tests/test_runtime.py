import pytest
import torch

from cirlab.distributed import init_distributed
from cirlab.errors import ConfigError
from cirlab.runtime import autocast, resolve_device, seed_everything


def test_device_resolution_on_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_autocast_bf16_on_cpu_and_refusals():
    with autocast(torch.device("cpu"), "bf16"):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.bfloat16
    with pytest.raises(ConfigError):
        autocast(torch.device("cpu"), "fp16")
    with pytest.raises(ConfigError):
        autocast(torch.device("cpu"), "int3")


def test_seeding_is_reproducible():
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))


def test_single_process_context(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed()
    assert ctx.world_size == 1 and ctx.is_main and not ctx.is_distributed
    ctx.barrier()

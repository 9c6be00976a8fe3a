"""Latency and peak-memory helpers measure what they say."""
import os
import time

import pytest
import torch

from srconvnet_plugin.measure.profiling import cpu_peak_memory, measure_latency

pytestmark = pytest.mark.usefixtures('one_thread')  # see tests/conftest.py


def test_latency_times_each_run_after_warmup():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.01)

    lat = measure_latency(fn, runs=3, warmup=2)
    assert len(calls) == 5
    assert len(lat.times_ms) == 3
    assert 10 <= lat.min_ms <= lat.median_ms <= lat.max_ms
    assert lat.iqr_ms >= 0
    with pytest.raises(ValueError, match='runs must be at least 1'):
        measure_latency(fn, runs=0)


def test_cpu_peak_memory_sees_a_temporary_allocation():
    mb = 2**20

    def fn():  # 256 MB touched and freed again: only the peak shows it
        torch.ones(256 * mb // 4, dtype=torch.float32).sum()

    mem = cpu_peak_memory(fn)
    assert mem.kind == 'cpu_peak_rss'
    assert mem.reset or not os.access('/proc/self/clear_refs', os.W_OK)  # Linux lets a process reset its peak
    assert 250 * mb <= mem.forward_bytes <= 400 * mb
    assert mem.peak_bytes > mem.forward_bytes

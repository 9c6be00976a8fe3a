"""Measurement tools: parameter and MAC counts (``complexity``), latency and peak memory (``profiling``), and what
the benchmark scripts share (``benchmark_helpers``)."""

"""Measurement tools: the helpers the benchmark scripts share (``benchmark_helpers``)."""

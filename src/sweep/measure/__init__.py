"""What a job measures: counts (parameters, MACs, sparsity) and latency."""

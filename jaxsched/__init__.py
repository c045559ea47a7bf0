"""jaxsched: policies, regularizers, baselines and metrics for workflow scheduling."""

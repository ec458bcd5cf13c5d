"""The listening-capacity benchmark (``benchmarks/listening_capacity.py``) by job: the load it
generates, what one level measures, the py-spy profile and the printed report."""

"""distinfer's comparisons and instruments; not part of the package. See README.md here.

Run them with ``python benchmarks/run.py NAME [NAME...] [options]``.
"""

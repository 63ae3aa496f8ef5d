"""Side-by-side benchmarks of nettools and its peers; run with ``python -m bench``.

Every (case, peer) measurement runs in a fresh subprocess (``python -m bench.one``) so that
one peer's hub, monkey-patching or leftover garbage can never colour another peer's numbers.
"""

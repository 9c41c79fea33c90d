"""``make bench``: what users care about -- misses on real voices, false accepts per hour,
latency, CPU and memory -- measured through the real daemon, beside other engines.

:mod:`bench.pipeline` reads top to bottom; ``python -m bench`` is the command line.
"""

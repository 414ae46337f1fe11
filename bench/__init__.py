"""Benchmarks of smug (``python -m smug.bench.NAME --help``); their results are in docs/benchmarks.md.

Scripts: ``smug_imagenet``, ``mnist_full``, ``hard_first_layer``, ``baselines``,
``table1``, ``alignment``, ``text``, ``service_load``.  Shared pieces:
:mod:`smug.bench.common` (load, markdown, docs sections, options),
:mod:`smug.bench.datasets` (the fixed splits of the real data),
:mod:`smug.bench.nets` (torch definitions of the trained zoo models) and
:mod:`smug.bench.hard_instances` (synthetic hard first-layer problems).
"""

"""smug.isolation: every solve in a child process, held to its deadline and its memory cap.

:mod:`~smug.isolation.runner` (:func:`solve_isolated`, :func:`stop_early`) races the backends in
solve hosts (:mod:`~smug.isolation.host`: forked once, kept for the next solve) and answers with
the best verified mask when a child is killed or stopped; :mod:`~smug.isolation.limits` holds the
operating system's side (``prctl``, ``mallopt``, ``RLIMIT_AS``).  It knows the solver's registry
and certificates, nothing of requests or front ends.
"""

"""Reading constraint dumps back, independently of the code that wrote them.

``smug inspect DUMP`` (:mod:`smug.debugging.inspect`) reports what the constraints say;
``smug check DUMP RESULT`` (:mod:`smug.debugging.check`) re-solves them with another engine
(python-sat's RC2, HiGHS or z3) and confirms a result's feasibility and minimality.  Dumps are
parsed with pysmt (SMT-LIB2), python-sat (WCNF) and HiGHS (LP/MPS), never with smug's writer.
"""

_EXPORTS = ("DumpError", "ParsedDump", "read_dump")  # from smug.debugging.reader, imported on first use


def __getattr__(name: str):
    if name in _EXPORTS:
        from smug.debugging import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'smug.debugging' has no attribute {name!r}")


__all__ = list(_EXPORTS)

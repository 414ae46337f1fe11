"""Reading constraint dumps back, independently of the code that wrote them.

``smug inspect DUMP`` (:mod:`smug.debugging.inspect`) reports what the constraints say;
``smug check DUMP RESULT`` (:mod:`smug.debugging.check`) re-solves them with another engine
(python-sat's RC2, HiGHS or z3) and confirms a result's feasibility and minimality.  Dumps are
parsed with pysmt (SMT-LIB2), python-sat (WCNF) and HiGHS (LP/MPS), never with smug's writer.
"""

from smug.debugging.reader import DumpError, ParsedDump, read_dump

__all__ = ["DumpError", "ParsedDump", "read_dump"]

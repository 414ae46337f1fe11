"""PEP 517 build backend: setuptools, after generating the gRPC modules from smug.proto.

``pyproject.toml`` names this module (``backend-path = ["proto"]``), so ``pip install .``
and ``pip install -e .`` both run :func:`generate.generate` first; the generated
``smug_pb2*.py`` land next to ``smug.proto`` and are packaged (or, for an editable
install, used in place).  Everything else is setuptools' own backend.
"""

from __future__ import annotations

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the PEP 517 hooks not overridden here)

from generate import generate, up_to_date  # proto/ is on sys.path through backend-path


def _generate() -> None:
    if not up_to_date():
        generate()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _generate()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _generate()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)

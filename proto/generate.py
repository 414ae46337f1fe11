"""Generate ``smug_pb2.py`` / ``smug_pb2_grpc.py`` from ``smug.proto`` with grpcio-tools.

Run at build/install time by ``proto/build_backend.py`` (the PEP 517 backend) and, as a
safety net, on first import when the files are missing or were made by a newer
grpcio than the one installed (:func:`smug.proto.load`).  This module imports nothing
from smug, so the build can run it before the package is installed:

    python proto/generate.py [OUT_DIR]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "smug.proto"
GENERATED = ("smug_pb2.py", "smug_pb2.pyi", "smug_pb2_grpc.py")


def up_to_date(out_dir: Path = HERE) -> bool:
    """Every generated file exists and is newer than the .proto."""
    stamp = PROTO.stat().st_mtime
    return all((out_dir / n).is_file() and (out_dir / n).stat().st_mtime >= stamp for n in GENERATED)


def generate(out_dir: str | Path = HERE) -> list[Path]:
    """Run protoc (grpc_tools) and write the modules into ``out_dir`` (atomically each).

    The .proto is compiled as ``smug/proto/smug.proto`` so the service module imports
    its messages as ``from smug.proto import smug_pb2``.
    """
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"generating the gRPC code needs grpcio-tools (pip install grpcio-tools): {exc}") from None
    import importlib.resources

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src" / "smug" / "proto"
        dst = Path(tmp) / "out"
        src.mkdir(parents=True)
        dst.mkdir()
        shutil.copyfile(PROTO, src / "smug.proto")
        well_known = str(importlib.resources.files("grpc_tools") / "_proto")
        args = ["grpc_tools.protoc", f"-I{Path(tmp) / 'src'}", f"-I{well_known}", f"--python_out={dst}",
                f"--pyi_out={dst}", f"--grpc_python_out={dst}", "smug/proto/smug.proto"]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}")
        written = []
        for name in GENERATED:
            tmp_file = out_dir / f".{name}.tmp"
            shutil.copyfile(dst / "smug" / "proto" / name, tmp_file)
            tmp_file.replace(out_dir / name)
            written.append(out_dir / name)
    return written


if __name__ == "__main__":
    for path in generate(sys.argv[1] if len(sys.argv) > 1 else HERE):
        print(path)

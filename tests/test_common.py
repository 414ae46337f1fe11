"""smug.common against plain references."""

from __future__ import annotations

import mmap
import os
import sys

import numpy as np
import pytest

from smug.common import proc_status_bytes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_proc_status_bytes_reads_sizes_of_this_process_in_bytes():
    rss = proc_status_bytes("VmRSS")
    with open("/proc/self/statm") as f:  # the same size in pages, from another file
        statm = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert rss > 0 and abs(rss - statm) < 1 << 20
    # a fresh anonymous mapping, every page written: 64 MiB that cannot be memory the allocator
    # already held resident (a freed numpy buffer reused would not move VmRSS)
    block = mmap.mmap(-1, 64 << 20)
    np.frombuffer(block, np.uint8)[:] = 1
    assert proc_status_bytes("VmRSS") - rss >= 60 << 20
    assert proc_status_bytes("VmSize", os.getpid()) >= proc_status_bytes("VmRSS") > 0
    block.close()


def test_proc_status_bytes_is_zero_for_what_is_not_there():
    assert proc_status_bytes("NoSuchField") == 0
    assert proc_status_bytes("VmRSS", 2**31 - 1) == 0  # no such process


def test_write_atomic_from_many_threads_leaves_one_whole_file(tmp_path):
    """Threads writing one path each use their own temporary file (the registry saves aliases so)."""
    import threading

    from smug.common import write_atomic

    target = tmp_path / "meta.json"
    payloads = [bytes([65 + i]) * 200_000 for i in range(8)]
    errors = []

    def write(data: bytes) -> None:
        try:
            for _ in range(5):
                write_atomic(target, data)
        except OSError as exc:  # a shared temporary file: replaced away under another thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]  # no temporary file left


def test_write_atomic_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    from smug.common import write_atomic

    target = tmp_path / "out.json"
    write_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]

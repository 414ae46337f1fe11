"""smug.common against plain references."""

from __future__ import annotations

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
    block = np.ones(64 << 20, np.uint8)  # 64 MiB, touched
    assert proc_status_bytes("VmRSS") - rss >= 60 << 20
    assert proc_status_bytes("VmSize", os.getpid()) >= proc_status_bytes("VmRSS") > 0
    del block


def test_proc_status_bytes_is_zero_for_what_is_not_there():
    assert proc_status_bytes("NoSuchField") == 0
    assert proc_status_bytes("VmRSS", 2**31 - 1) == 0  # no such process

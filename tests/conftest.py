"""Shared test set-up: one torch thread per test process (pytest-xdist runs one process per core),
a private latency cache and no busy-machine check, so that tests neither read nor write the user's measurements and tables."""

import os
import tempfile

import pytest
import torch

os.environ["NAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="nas-test-cache-")  # before any cache is opened
# tests run beside each other (xdist): the busy-machine check would see the other worker; the tests of the
# check (tests/test_latency_load.py) hand in their own monitors
os.environ["NAS_LOAD_CHECK"] = "off"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

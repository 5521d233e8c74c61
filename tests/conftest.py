"""Shared test set-up: one torch thread per test process (pytest-xdist runs one process per core),
and a private latency cache, so that tests neither read nor write the user's measurements and tables."""

import os
import tempfile

import pytest
import torch

os.environ["NAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="nas-test-cache-")  # before any cache is opened


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Registers the marker of the seed tests whose families only a full kernel runs."""
from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "full_kernel: needs a family this lab's kernel refuses (kprobe, kretprobe, fmod_ret); "
        "skips here with the kernel's reason and runs in the full-kernel VM (pytest -m full_kernel)",
    )

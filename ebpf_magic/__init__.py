"""eBPF program-types lab: ``%load_ext ebpf_magic`` then ``%%bpf SEC``."""

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    # Imported here so that `import ebpf_magic` stays cheap and IPython-free.
    from .magics import register

    register(ipython)


def unload_ipython_extension(ipython):
    from .magics import unregister

    unregister(ipython)

"""The "eBPF lab" Jupyter kernel: ``python -m ebpf_magic.kernelspec install``.

A kernelspec in this environment's share/jupyter/kernels (where JupyterLab's
Launcher, nbval and the VM's notebook runs look for the chapters' kernel) that
starts this interpreter's ipykernel with ebpf_magic already loaded.

The extension is loaded by calling its hook, not with ``--ext``: IPython then
does not count it as loaded, so the chapters' own ``%load_ext ebpf_magic``
loads it again silently (registering the magics twice is harmless) instead of
printing "already loaded", which would break nbval's comparison of outputs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

NAME = "ebpf-lab"
DISPLAY_NAME = "eBPF lab (Python 3, root)"
PRELOAD = "import ebpf_magic as _ebpf_magic; _ebpf_magic.load_ipython_extension(get_ipython()); del _ebpf_magic"


def spec(python: str = sys.executable) -> dict:
    return {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 f"--IPKernelApp.exec_lines={PRELOAD}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": True},
    }


def metadata() -> dict:
    """What a chapter's ``metadata.kernelspec`` says to pick this kernel."""
    return {"display_name": DISPLAY_NAME, "language": "python", "name": NAME}


def draw_logo(path: Path, size: int) -> None:
    """A bee-yellow hexagon with "eBPF" on it, drawn rather than copied from any project."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import RegularPolygon

    fig = Figure(figsize=(1, 1), dpi=size)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_axis_off()
    ax.add_patch(RegularPolygon((0, 0), 6, radius=0.98, facecolor="#f5b700", edgecolor="#3a2e00",
                                linewidth=size / 32))
    ax.text(0, 0.02, "eBPF", ha="center", va="center", fontsize=size * 0.22, fontweight="bold",
            color="#1d1d1d")
    fig.savefig(path, transparent=True)


def install(prefix: str = sys.prefix, python: str = sys.executable) -> Path:
    """Install (or refresh) the kernelspec under prefix/share/jupyter/kernels; returns its directory."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / NAME
        src.mkdir()
        (src / "kernel.json").write_text(json.dumps(spec(python), indent=1) + "\n")
        for size in (32, 64):
            draw_logo(src / f"logo-{size}x{size}.png", size)
        return Path(KernelSpecManager().install_kernel_spec(str(src), NAME, prefix=prefix))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ebpf_magic.kernelspec", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["install", "show"])
    parser.add_argument("--prefix", default=sys.prefix, help="where share/jupyter/kernels is (default: this venv)")
    args = parser.parse_args(argv)
    if args.command == "show":
        print(json.dumps(spec(), indent=1))
        return
    print(f"installed the {DISPLAY_NAME!r} kernel in {install(args.prefix)}")


if __name__ == "__main__":
    main()

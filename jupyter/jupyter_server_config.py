# JupyterLab as `make lab` starts it: the course's notebooks, opened on their start page.
# Used with `jupyter lab --config jupyter/jupyter_server_config.py`; the browser tests use it too.
from pathlib import Path

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)

c.ServerApp.root_dir = str(Path(__file__).resolve().parent.parent / "notebooks")
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True   # loading BPF programs needs root, and `make lab` runs as root
c.LabApp.default_url = "/lab/tree/index.ipynb"
# No request to jupyter.org for news or new versions: the lab runs offline (jupyter/overrides.json
# turns the client-side "get notified about news?" question off).
c.LabApp.news_url = None

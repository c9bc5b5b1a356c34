"""A real JupyterLab and the distribution's Chromium, for tests/browser.

The server runs the chapters from a scratch copy (JupyterLab may autosave what
it runs; the committed notebooks must not change), with the repository's own
server config and the "eBPF lab" kernel, on a free loopback port with a
random token, and without EBPF_LAB_HEADLESS: here live views are real widgets.
Chromium is Debian's (/usr/bin/chromium, /usr/bin/chromedriver), so Selenium
never downloads a browser or a driver.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
KERNEL_NAME = "ebpf-lab"


def wait_for(condition, timeout: float, what: str, every: float = 0.25):
    """condition()'s first truthy value; the deadline only bounds a failure, it is never slept out."""
    end = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the page may be between states: try again until the deadline
            last_exc = exc
        if time.monotonic() > end:
            hint = f" (last error: {type(last_exc).__name__}: {last_exc})" if last_exc else ""
            raise TimeoutError(f"waited {timeout:.0f} s for {what}{hint}")
        time.sleep(every)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the chapters load BPF programs: run the browser tests as root"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: bash scripts/setup-browser.sh installs chromium and chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed in this venv: bash scripts/setup-browser.sh installs it"
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        return f"no {KERNEL_NAME!r} kernelspec: make setup (python -m ebpf_magic.kernelspec install)"
    return None


def pytest_collection_modifyitems(config, items):
    why = _missing()
    if why is None:
        return
    if os.environ.get("EBPF_LAB_REQUIRE_BROWSER") == "1":   # make test: a skipped browser run is a failed one
        raise pytest.UsageError(f"the browser tests cannot run: {why}")
    for item in items:
        if {"lab", "browser"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.skip(reason=why))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, root: Path, port: int, token: str, proc: subprocess.Popen, log: Path):
        self.root, self.port, self.token, self.proc, self.log = root, port, token, proc, log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={self.token}"

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url("/api/status"), timeout=5) as r:
                return r.status == 200
        except OSError:
            return False


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # Autosave off, so a chapter run in the browser writes nothing, not even into the scratch copy.
    # Every cell stays in the DOM (no windowing), so every output can be inspected.
    user_settings = {("docmanager-extension", "plugin"): '{"autosave": false}',
                     ("notebook-extension", "tracker"): '{"windowingMode": "none"}'}
    for (package, plugin), text in user_settings.items():
        folder = tmp / "user-settings" / "@jupyterlab" / package
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{plugin}.jupyterlab-settings").write_text(text + "\n")
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "EBPF_LAB_HEADLESS"}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")
    log = tmp / "jupyter.log"
    cmd = [sys.executable, "-m", "jupyterlab", f"--config={REPO / 'jupyter' / 'jupyter_server_config.py'}",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={tmp / 'user-settings'}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Lab(root, port, token, proc, log)
    try:
        wait_for(server.up, 180, "JupyterLab to answer /api/status")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(180)
    driver.set_script_timeout(120)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()

"""What a learner sees on `make lab`: the course's start page, the lab's kernel, no news question."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import KERNEL_NAME, wait_for

pytestmark = pytest.mark.live


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_lab_opens_the_start_page_without_the_news_question(lab, browser):
    # `/` sends a learner to the start page (the test's browser also has the chapters' tabs in its
    # workspace, which `?reset` drops, as a first `make lab` has none).
    req = urllib.request.Request(lab.url("/"), method="GET")
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(req, timeout=30)
    assert redirect.value.headers["Location"].split("?")[0].endswith("/lab/tree/index.ipynb")
    browser.get(lab.url("/lab/tree/index.ipynb") + "&reset")
    opened = wait_for(lambda: browser.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "return w && w.context && w.context.isReady ? w.context.path : null;"), 240, "the start page to open")
    assert opened == "index.ipynb"
    wait_for(lambda: "00 · Quickstart" in browser.execute_script(
        "return window.jupyterapp.shell.currentWidget.content.node.innerText;"), 120,
        "the start page's table of chapters to render")
    assert "eBPF program types" in browser.execute_script(
        "return window.jupyterapp.shell.currentWidget.content.node.innerText;")

    config = json.loads(browser.execute_script("return document.getElementById('jupyter-config-data').textContent;"))
    assert config["news"] == {"disabled": True}, "the server fetches no news (LabApp.news_url = None)"
    settings = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.jupyterapp.serviceManager.settings.fetch('@jupyterlab/apputils-extension:notification')"
        ".then(s => done(s.schema.properties), e => done(String(e)));")
    # jupyter/overrides.json (installed into the venv's overrides.d) changes the schema's defaults.
    assert settings["fetchNews"]["default"] == "false", f"the news question would be asked: {settings}"
    assert "official Jupyter news" not in browser.find_element("tag name", "body").text

    specs = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/kernelspecs').then(r => r.json()).then(done, e => done(String(e)));")
    ours = specs["kernelspecs"][KERNEL_NAME]
    assert ours["spec"]["display_name"] == "eBPF lab (Python 3, root)"
    assert "logo-64x64" in ours["resources"]

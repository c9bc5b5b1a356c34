"""What a learner sees on `make lab`: the course's start page, the lab's kernel, no news question."""
from __future__ import annotations

import json

import pytest

from tests.browser.conftest import KERNEL_NAME, wait_for

pytestmark = pytest.mark.live


def test_lab_opens_the_start_page_without_the_news_question(lab, browser):
    browser.get(lab.url("/"))
    opened = wait_for(lambda: browser.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "return w && w.context && w.context.isReady ? w.context.path : null;"), 240, "the start page to open")
    assert opened == "index.ipynb"
    text = browser.execute_script("return window.jupyterapp.shell.currentWidget.content.node.innerText;")
    assert "eBPF program types" in text and "00 · Quickstart" in text

    config = json.loads(browser.execute_script("return document.getElementById('jupyter-config-data').textContent;"))
    assert config["news"] == {"disabled": True}, "the server fetches no news (LabApp.news_url = None)"
    settings = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.jupyterapp.serviceManager.settings.fetch('@jupyterlab/apputils-extension:notification')"
        ".then(s => done(s.settings ? s.settings.composite : s.composite), e => done(String(e)));")
    assert settings["fetchNews"] == "false", f"the news question would be asked: {settings}"
    assert "official Jupyter news" not in browser.find_element("tag name", "body").text

    specs = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/kernelspecs').then(r => r.json()).then(done, e => done(String(e)));")
    ours = specs["kernelspecs"][KERNEL_NAME]
    assert ours["spec"]["display_name"] == "eBPF lab (Python 3, root)"
    assert "logo-64x64" in ours["resources"]

"""advx's kernel in a real JupyterLab, in a real browser.

Usage: browser.py KERNELS_DIR REPO SCREENSHOT

Serves JupyterLab (from .venv) on loopback with the kernelspec under
KERNELS_DIR (installed with the prelude models/mnist/models.advx), opens a
notebook for the advx kernel in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium), runs every cell from the Run menu,
and checks in the page that the kernel is advx's, that
`show evaluate fc100 on mnist.test` showed its HTML table and a grid its
image, that the code is highlighted, and that Tab completes and Shift-Tab
shows an operation's usage in a cell being typed. Saves a screenshot to
SCREENSHOT. Exits non-zero on failure.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

KERNELS, REPO, SCREENSHOT = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
CELLS = [
    ("markdown", "# advx in JupyterLab\n\nThe paper's models come from the kernel's prelude."),
    ("code", "show evaluate fc100 on mnist.test"),
    ("code", 'let digits = mnist.test[0..16]  # the first digits\nlet caption = "FC100-100-10"'),
    ("code", "show grid(digits, cols: 8, labels: fc100.predict(digits)) { title: caption }"),
    ("code", ""),
]


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def notebook():
    cells = []
    for i, (kind, source) in enumerate(CELLS):
        cell = {"cell_type": kind, "id": f"cell-{i}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        cells.append(cell)
    return {
        "nbformat": 4, "nbformat_minor": 5, "cells": cells,
        "metadata": {"kernelspec": {"name": "advx", "display_name": "advx", "language": "advx"}},
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root, port, token):
    # No "get notified about Jupyter news?" prompt over the page.
    settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = dict(os.environ, JUPYTER_PATH=KERNELS, JUPYTER_PLATFORM_DIRS="1",
               JUPYTER_CONFIG_DIR=str(root / ".config"), JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"))
    lab = Path(sys.executable).with_name("jupyter-lab")
    log = open(root / "lab.log", "w")
    server = subprocess.Popen([str(lab), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                               "--allow-root"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.5)
    server.kill()
    raise AssertionError(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def click_menu(driver, wait, menu, item):
    wait.until(seen.element_to_be_clickable(
        (By.XPATH, f"//li[contains(@class, 'lm-MenuBar-item')][.//div[text()='{menu}']]"))).click()
    wait.until(seen.element_to_be_clickable(
        (By.XPATH, f"//li[contains(@class, 'lm-Menu-item')][.//div[text()='{item}']]"))).click()


def typing_checks(driver, wait, editor):
    """Tab and Shift-Tab in a cell being typed, as a user presses them."""
    editor.click()
    ActionChains(driver).send_keys("show evaluate fc1").send_keys(Keys.TAB).perform()
    completer = wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, ".jp-Completer")))
    items = [i.text for i in completer.find_elements(By.CSS_SELECTOR, ".jp-Completer-item")]
    check(any("fc100" in i for i in items) and any("fc10_1e4" in i for i in items), f"Tab lists the models bound ({items})")
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    ActionChains(driver).send_keys("00 on mnist.test\nlet a = lbfgs").perform()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    tooltip = wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, ".jp-Tooltip")))
    check("usage:" in tooltip.text and "lbfgs" in tooltip.text, "Shift-Tab shows lbfgs's usage")


def main():
    root = Path(tempfile.mkdtemp(prefix="advx-lab-"))
    (root / "study.ipynb").write_text(json.dumps(notebook()))
    port, token = free_port(), secrets.token_hex(16)
    server = serve(root, port, token)
    driver = None
    try:
        driver = browser()
        wait = WebDriverWait(driver, 120)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/study.ipynb?token={token}")
        status = (By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
        wait.until(seen.presence_of_element_located(status))
        named = wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, ".jp-KernelName"), "advx"))
        check(named, "the notebook runs on the advx kernel (its toolbar says advx)")

        click_menu(driver, wait, "Run", "Run All Cells")
        table = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".jp-OutputArea-output table")))
        check("fc100" in table.text and "10000" in table.text,
              "`show evaluate fc100 on mnist.test` showed its HTML table")
        image = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".jp-OutputArea-output img")))
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))
        width = driver.execute_script("return arguments[0].naturalWidth", image)
        check(width > 100, f"an image output appeared ({width} px wide)")
        failed = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        check(not failed, "no cell failed")

        code = driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-content")
        check(len(code) == 4, f"four code cells in the page ({len(code)})")
        coloured = driver.execute_script("""
            const spans = [...arguments[0].querySelectorAll('.cm-line span')];
            return spans.map(s => [s.textContent, getComputedStyle(s).color]);""", code[1])
        plain = driver.execute_script("return getComputedStyle(arguments[0]).color", code[1])
        tokens = {text: colour for text, colour in coloured}
        string, comment = tokens.get('"FC100-100-10"'), tokens.get("# the first digits")
        check(string and comment and string != plain and comment != plain and string != comment,
              f"the cells are highlighted (string {string}, comment {comment}, text {plain})")
        typing_checks(driver, wait, code[3])
        time.sleep(0.5)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        check(SCREENSHOT.stat().st_size > 10_000, f"a screenshot saved to {SCREENSHOT}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()

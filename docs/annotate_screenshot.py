"""Draw docs/images/annotate.png: the labeling page of ``jaxal annotate`` after a few batches.

A project on 300 of scikit-learn's digits (200 more held out, labeled, for the chart) is
served on a free port; four batches of 10 are labeled through the HTTP API with the
digits' true labels, as a person would; then headless Chromium opens the page, labels
two points of the fifth batch with keys and takes the screenshot.

Needs the annotate extra, Selenium and Debian's chromium and chromium-driver:

    pip install ".[annotate]" selenium && python docs/annotate_screenshot.py
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time

import httpx
import numpy as np
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.datasets import load_digits

from jaxal.annotate.app import Project, create_app
from jaxal.annotate.learner import Learner
from jaxal.annotate.server import open_project, save_project
from jaxal.annotate.worker import Worker

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def wait_until(condition, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not get there in time")
        time.sleep(0.1)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "images", "annotate.png"))
    parser.add_argument("--batches", type=int, default=4, help="batches labeled before the shot")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="jaxal-annotate-")
    digits = load_digits()
    truth = digits.target[:300]
    dataset = os.path.join(work, "digits.npz")
    np.savez(
        dataset,
        x=digits.data[:300],
        x_test=digits.data[300:500],
        y_test=digits.target[300:500],
        classes=np.array([str(c) for c in range(10)]),
    )
    store, config, data = open_project(
        os.path.join(work, "labels.sqlite"),
        {"dataset": dataset, "budget": 10, "steps": 200, "strategy": "margin"},
    )
    save_project(store, config, data)
    worker = Worker(store, Learner(config, data), poll=0.2)
    app = create_app(Project(config, data, store, worker, "Grace"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    worker.start()
    url = f"http://127.0.0.1:{port}/"
    client = httpx.Client(base_url=url, timeout=60)
    wait_until(lambda: server.started)
    for batch in range(args.batches):
        wait_until(
            lambda b=batch: (r := client.get("/api/state").json()["round"]) and r["index"] == b
        )
        point = client.post("/api/next", json={"client": "script"}).json()["point"]
        while point is not None and point["round"] == batch:
            body = {"client": "script", "round": batch, "index": point["index"]}
            body.update(label=int(truth[point["index"]]), annotator="Grace")
            point = client.post("/api/label", json=body).json()["point"]
        print(f"labeled batch {batch + 1}", file=sys.stderr)
    client.post("/api/release", json={"client": "script"})
    wait_until(
        lambda: (r := client.get("/api/state").json()["round"]) and r["index"] == args.batches
    )

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        shown = (
            "const b = document.getElementById('point'), i = document.getElementById("
            "'point-image'); return !b.hidden && i.complete && i.naturalWidth ? "
            "Number(b.dataset.index) : null;"
        )
        for _ in range(2):
            index = WebDriverWait(driver, 60).until(lambda d: d.execute_script(shown))
            driver.find_element(By.TAG_NAME, "body").send_keys(str(truth[index]))
            WebDriverWait(driver, 60).until(
                lambda d, i=index: d.execute_script(shown) not in (None, i)
            )
        time.sleep(1.5)  # the next poll draws the progress
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        driver.save_screenshot(args.out)
    finally:
        driver.quit()
        worker.stop()
        server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The labeling page in a real browser (headless Chromium driven by Selenium): a person labels
a whole batch with clicks and keys, undoes and skips, sees the next batch arrive and the
accuracy chart grow, and finishes."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        f"the browser test needs Debian's chromium and chromium-driver ({CHROMIUM}, "
        f"{CHROMEDRIVER}): apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
pytest.importorskip("selenium")
pytest.importorskip("starlette")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from jaxal.annotate.app import create_app  # noqa: E402
from tests.annotate_support import project, running, tiny_digits  # noqa: E402

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1100,800",
)
BUDGET = 4


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def page(tmp_path):
    """(driver, project, true labels, url): the page open on a new project, whose worker
    picks batches of 4 for 2 rounds."""
    dataset, truth = tiny_digits(str(tmp_path / "digits.npz"))
    made = project(str(tmp_path / "labels.sqlite"), dataset, budget=BUDGET, rounds=2)
    made.worker.start()
    driver = browser()
    try:
        with running(create_app(made)) as url:
            driver.get(url)
            yield driver, made, truth, url
    finally:
        driver.quit()
        made.worker.stop()


def wait(driver, condition, timeout=90):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition())


def shown(driver) -> int | None:
    """The index of the point on the page once its picture has loaded, else None."""
    return driver.execute_script(
        "const box = document.getElementById('point');"
        "const img = document.getElementById('point-image');"
        "if (box.hidden || !box.dataset.index || !img.complete || !img.naturalWidth) return null;"
        "return Number(box.dataset.index);"
    )


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def press(driver, key: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def next_point(driver, after: int | None) -> int:
    """Wait until a point other than ``after`` is shown; its index."""
    return wait(driver, lambda: (i := shown(driver)) is not None and i != after and i)


def test_a_person_labels_two_batches_with_clicks_and_keys(page):
    driver, made, truth, _ = page
    name = driver.find_element(By.ID, "annotator")
    wait(driver, lambda: name.get_attribute("value") == "tester")
    name.clear()
    name.send_keys("Grace")
    driver.find_element(By.ID, "title").click()  # leave the field: keys label again

    buttons = driver.find_elements(By.CSS_SELECTOR, "#classes button")
    assert [b.get_attribute("aria-label") for b in buttons] == [str(c) for c in range(10)]
    assert [b.find_element(By.TAG_NAME, "kbd").text for b in buttons] == [str(c) for c in range(10)]

    # Batch 1: a click, a key, an undo and the key again, a skip, a click.
    first = next_point(driver, None)
    assert "0 of 4 done in batch 1" in text(driver, "batch-text")
    driver.find_element(By.CSS_SELECTOR, f'#classes button[data-label="{truth[first]}"]').click()
    second = next_point(driver, first)
    press(driver, str((truth[second] + 5) % 10))  # a slip of the finger
    third = next_point(driver, second)
    wait(driver, lambda: "2 of 4 done" in text(driver, "batch-text"))
    press(driver, "u")
    assert next_point(driver, third) == second
    press(driver, str(truth[second]))
    assert next_point(driver, second) == third
    press(driver, "s")
    fourth = next_point(driver, third)
    driver.find_element(By.CSS_SELECTOR, f'#classes button[data-label="{truth[fourth]}"]').click()

    # The worker trains on 3 labels and sends batch 2; the chart gets its first point.
    wait(driver, lambda: "0 of 4 done in batch 2" in text(driver, "batch-text"))
    fifth = next_point(driver, fourth)
    assert fifth not in (first, second, third, fourth)
    wait(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, "#chart circle")) == 1)
    assert "3 of 60 points labeled, 1 skipped" in text(driver, "overall-text")
    assert "labeled 3 of 60; 1 skipped; accuracy" in text(driver, "status-text")

    # Batch 2 by keys alone.
    point = fifth
    for _ in range(BUDGET - 1):
        press(driver, str(truth[point]))
        point = next_point(driver, point)
    press(driver, str(truth[point]))
    wait(driver, lambda: "nothing is left to pick" in text(driver, "waiting-text"))
    wait(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, "#chart circle")) == 2)
    assert "7 of 60 points labeled" in text(driver, "overall-text")
    assert driver.find_element(By.ID, "error").get_attribute("hidden") is not None

    labels = {x.point: x for x in made.store.labels()}
    assert len(labels) == 2 * BUDGET
    assert labels[third].label is None  # the skip
    assert all(x.label == truth[i] for i, x in labels.items() if i != third)
    assert {x.annotator for x in labels.values()} == {"Grace"}
    assert len({x.client for x in labels.values()}) == 1

"""The labeling server through its HTTP API, served by uvicorn: label, skip, undo, the next
batch after the worker's round, two clients at once, bad input, the access token."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from jaxal.annotate.app import create_app  # noqa: E402
from tests.annotate_support import project, running, tiny_digits, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return tiny_digits(str(tmp_path_factory.mktemp("data") / "digits.npz"))


@pytest.fixture(scope="module")
def learner(dataset, tmp_path_factory):
    """One learner for the module, so the jitted round and training compile once."""
    made = project(str(tmp_path_factory.mktemp("store") / "first.sqlite"), dataset[0])
    return made.worker.learner


@pytest.fixture
def served(tmp_path, dataset, learner):
    """(project, client) with the worker running and the first batch picked."""
    made = project(str(tmp_path / "labels.sqlite"), dataset[0], learner, rounds=2)
    made.worker.start()
    with running(create_app(made)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_for(lambda: client.get("/api/state").json()["round"], what="the first batch")
        yield made, client
    made.worker.stop()


def label(client, tab, point, value, annotator="tester"):
    return client.post(
        "/api/label",
        json={
            "client": tab,
            "round": point["round"],
            "index": point["index"],
            "label": value,
            "annotator": annotator,
        },
    )


def test_label_skip_undo_and_the_next_batch(served, dataset):
    made, client = served
    truth = dataset[1]
    state = client.get("/api/state", params={"client": "tab"}).json()
    assert state["classes"] == [str(c) for c in range(10)]
    assert state["round"] == {
        "index": 0,
        "size": 5,
        "resolved": 0,
        "strategy": "random",
        "open": True,
    }
    assert state["heldout"] and state["chart"] == [] and state["display"] == "image"

    point = client.post("/api/next", json={"client": "tab"}).json()["point"]
    image = client.get(point["image"])
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    first = point["index"]
    answer = label(client, "tab", point, int(truth[first])).json()
    assert answer["saved"]["index"] == first and answer["saved"]["annotator"] == "tester"
    second = answer["point"]
    assert second["index"] != first and second["position"] == 1

    # Undo gives the first point back; it is labeled again (with another class).
    undone = client.post("/api/undo", json={"client": "tab", "round": 0}).json()["point"]
    assert undone["index"] == first
    assert client.post("/api/next", json={"client": "tab"}).json()["point"]["index"] == first
    label(client, "tab", undone, (int(truth[first]) + 1) % 10).raise_for_status()

    skipped = client.post("/api/next", json={"client": "tab"}).json()["point"]
    answer = client.post(
        "/api/skip",
        json={"client": "tab", "round": 0, "index": skipped["index"], "annotator": "tester"},
    )
    assert answer.status_code == 200 and answer.json()["saved"]["label"] is None
    point = answer.json()["point"]
    while point is not None:
        point = label(client, "tab", point, int(truth[point["index"]])).json()["point"]

    # The batch is done: the worker trains on 4 labels and picks batch 1.
    state = wait_for(
        lambda: (s := client.get("/api/state").json())["round"]["index"] == 1 and s,
        what="the second batch",
    )
    assert state["labeled"] == 4 and state["skipped"] == 1
    assert len(state["chart"]) == 1 and state["chart"][0]["labeled"] == 4
    assert 0.0 <= state["chart"][0]["accuracy"] <= 1.0
    assert state["status"].startswith("labeled 4 of 60; 1 skipped; accuracy")
    rounds = made.store.rounds()
    assert rounds[1].strategy == "margin" and rounds[1].labeled == 4
    batch0 = {pick.point for pick, _ in made.store.picks(0)}
    batch1 = {pick.point for pick, _ in made.store.picks(1)}
    assert len(batch1) == 5 and not batch0 & batch1  # labeled and skipped never again
    stored = {x.point: x.label for x in made.store.labels()}
    assert stored[first] == (int(truth[first]) + 1) % 10 and stored[skipped["index"]] is None

    # Undo cannot reach into a batch that went into training.
    refused = client.post("/api/undo", json={"client": "tab", "round": 0})
    assert refused.status_code == 409 and "stale" in refused.json()["error"]

    point = client.post("/api/next", json={"client": "tab"}).json()["point"]
    while point is not None:
        point = label(client, "tab", point, int(truth[point["index"]])).json()["point"]
    state = wait_for(lambda: (s := client.get("/api/state").json())["done"] and s, what="done")
    assert state["round"] is None and state["labeled"] == 9 and len(state["chart"]) == 2
    assert client.post("/api/next", json={"client": "tab"}).json()["reason"].startswith("done")


def test_two_clients_at_once_never_share_a_point_and_lose_nothing(served, dataset):
    made, client = served
    truth = dataset[1]
    taken: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def tab(name):
        barrier.wait()
        point = client.post("/api/next", json={"client": name}).json()["point"]
        while point is not None and point["round"] == 0:  # batch 1 may follow at once
            taken[name].append(point["index"])
            answer = label(client, name, point, int(truth[point["index"]]), annotator=name)
            if answer.status_code != 200:
                errors.append(answer.text)
                return
            point = answer.json()["point"]

    threads = [threading.Thread(target=tab, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert not set(taken["a"]) & set(taken["b"])
    picks = sorted(pick.point for pick, _ in made.store.picks(0))
    assert sorted(taken["a"] + taken["b"]) == picks
    labels = [x for x in made.store.labels() if x.round == 0]
    assert sorted(x.point for x in labels) == picks
    assert {x.annotator for x in labels} <= {"a", "b"}
    assert all(x.label == truth[x.point] for x in labels)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"index": 999}, 404, "unknown point 999"),
        ({"label": 10}, 400, "label 10 is out of range"),
        ({"round": 7}, 409, "stale"),
        ({"label": "3"}, 400, "label must be an integer"),
        ({"extra": 1}, 400, "unknown field: extra"),
        ({"annotator": None}, 400, "annotator"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(served, body, status, message):
    made, client = served
    point = client.post("/api/next", json={"client": "tab"}).json()["point"]
    request = {"client": "tab", "round": point["round"], "index": point["index"], "label": 1}
    request["annotator"] = "tester"
    request.update(body)
    answer = client.post("/api/label", json=request)
    assert answer.status_code == status and message in answer.json()["error"]
    assert made.store.labels() == []


def test_malformed_requests_are_refused(served):
    made, client = served
    missing = client.post("/api/label", json={"client": "tab"})
    assert missing.status_code == 400 and "missing fields" in missing.json()["error"]
    text = client.post("/api/label", content=b"{}", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    broken = client.post("/api/label", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
    listed = client.post("/api/next", json=["tab"])
    assert listed.status_code == 400
    assert client.get("/api/image/60").status_code == 404
    assert client.get("/api/image/x").status_code == 400
    assert client.get("/api/state", params={"client": "no spaces"}).status_code == 400
    assert made.store.labels() == []


def test_a_local_server_answers_only_to_loopback_names(served):
    _, client = served
    assert client.get("/api/state", headers={"host": "attacker.example"}).status_code == 403
    assert client.get("/api/state", headers={"host": "localhost:1"}).status_code == 200


def test_a_token_is_required_on_every_request(tmp_path, dataset, learner):
    made = project(str(tmp_path / "labels.sqlite"), dataset[0], learner)
    token = "t" * 43
    app = create_app(made, token=token)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for path in ("/", "/api/state", "/static/app.js", "/api/image/0"):
            denied = client.get(path)
            assert denied.status_code == 401 and "access token" in denied.json()["error"]
        assert client.get("/api/state", headers={"x-jaxal-token": "wrong"}).status_code == 401
        denied = client.post("/api/next", json={"client": "tab"})
        assert denied.status_code == 401
        assert client.get("/api/state", headers={"x-jaxal-token": token}).status_code == 200
        # The page's address carries it once; the answer sets a cookie for the rest.
        page = client.get("/", params={"token": token})
        assert page.status_code == 200 and "jaxal annotate" in page.text
        assert "HttpOnly" in page.headers["set-cookie"]
        assert client.get("/api/state").status_code == 200  # the cookie
        client.cookies.clear()
        assert client.get("/api/state").status_code == 401


def test_the_page_and_its_files_are_served_with_safe_headers(served):
    _, client = served
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for path in ("/static/app.js", "/static/style.css"):
        assert client.get(path).status_code == 200


def test_a_table_pool_sends_rows(tmp_path, learner):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "table.npz")
    np.savez(
        path,
        x=rng.normal(size=(30, 3)),
        classes=np.array(["no", "yes"]),
        feature_names=np.array(["age", "income", "score"]),
    )
    made = project(str(tmp_path / "labels.sqlite"), path, budget=3, steps=5)
    assert made.data.display == "table"
    made.worker.step()
    with running(create_app(made)) as url, httpx.Client(base_url=url, timeout=30) as client:
        point = client.post("/api/next", json={"client": "tab"}).json()["point"]
        assert [name for name, _ in point["row"]] == ["age", "income", "score"]
        assert "image" not in point
        assert client.get(f"/api/image/{point['index']}").status_code == 404

"""The server's safe defaults: keys, the Host guard, body caps, a bounded queue, `ps`."""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import openai
import pytest
from serverproc import running_server

from localllm.config import Settings

pytestmark = [pytest.mark.model, pytest.mark.one_build]
MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def guarded(starter_home):
    args = ("-m", MODEL, "--parallel", "1", "--max-queue", "1", "--ctx", "1024",
            "--api-key", "sekrit", "--max-body", "4096")  # fmt: skip
    with running_server(starter_home, *args) as url:
        yield url


def test_a_key_is_required_when_one_is_set(guarded):
    assert httpx.get(guarded + "/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded + "/v1", api_key="wrong", max_retries=0).models.list()
    good = openai.OpenAI(base_url=guarded + "/v1", api_key="sekrit", max_retries=0)
    assert [m.id for m in good.models.list()] == ["smollm2-135m:q4_1"]
    assert httpx.get(guarded + "/health").status_code == 200  # probes need no key


def test_a_foreign_host_header_is_refused(guarded):
    r = httpx.get(guarded + "/api/tags", headers={"Host": "attacker.example",
                                                  "Authorization": "Bearer sekrit"})  # fmt: skip
    assert r.status_code == 403 and "DNS rebinding" in r.json()["error"]


def test_a_body_over_the_cap_is_refused(guarded):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 5000}]}
    r = httpx.post(guarded + "/v1/chat/completions", json=body,
                   headers={"Authorization": "Bearer sekrit"})  # fmt: skip
    assert r.status_code == 413 and "--max-body" in r.json()["error"]["message"]


def test_a_full_queue_answers_503_with_retry_after(guarded):
    body = {"model": MODEL, "max_tokens": 300, "temperature": 1.0,
            "messages": [{"role": "user", "content": "Write a long story."}]}  # fmt: skip
    headers = {"Authorization": "Bearer sekrit"}
    statuses = []

    def send():
        r = httpx.post(guarded + "/v1/chat/completions", json=body, headers=headers, timeout=120)
        statuses.append((r.status_code, r.headers.get("retry-after")))

    threads = [threading.Thread(target=send) for _ in range(4)]  # 1 slot + 1 waiting
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (503, "1") in statuses and (200, None) in statuses


def test_ps_shows_the_loaded_model(guarded):
    port = guarded.rsplit(":", 1)[1]
    out = subprocess.run([sys.executable, "-m", "localllm", "ps", "--port", port],
                         capture_output=True, text=True, env={"LOCALLLM_API_KEY": "sekrit",
                         "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "smollm2-135m:q4_1" in out.stdout and "1024" in out.stdout


def test_other_addresses_need_a_key(starter_home):
    out = subprocess.run([sys.executable, "-m", "localllm", "serve", "--host", "0.0.0.0"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 1 and "--api-key" in out.stderr and "Traceback" not in out.stderr


def test_pull_through_the_api_only_with_allow_pull(hub, fresh_home):
    import ollama

    from localllm.store.registry import Registry

    env = {"HF_ENDPOINT": hub.url}
    with running_server(fresh_home, "--allow-pull", env=env) as url:
        client = ollama.Client(host=url)
        statuses = [p.status for p in client.pull("smollm2-135m:q4_k_m", stream=True)]
        assert statuses[-1] == "success" and len(statuses) > 1  # progress, then success
        names = [m.model for m in client.list().models]
        assert names == ["smollm2-135m:q4_k_m"]
        for bad in ("../../etc/passwd", "no-such-model"):  # names from the catalogue only
            with pytest.raises(ollama.ResponseError):
                client.pull(bad)
        with pytest.raises(ollama.ResponseError, match="unknown model"):  # streamed: the last line
            list(client.pull("no-such-model", stream=True))
    settings = Settings.from_env({"LOCALLLM_HOME": str(fresh_home)})
    assert list(Registry(settings).all()) == ["smollm2-135m:q4_k_m"]

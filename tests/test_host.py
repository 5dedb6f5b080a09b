"""ModelHost: keep-alive, least-recently-used eviction, pinning, on the real starter model."""

from __future__ import annotations

import pytest

from localllm.config import Settings
from localllm.engine.embed import EmbeddingEngine
from localllm.engine.host import Loader, ModelHost
from localllm.engine.llama import load_engine
from localllm.errors import ModelNotFound
from localllm.store.resolve import host_resolver

pytestmark = pytest.mark.model


def make_host(home, budget=lambda: 2**40, **kwargs):
    settings = Settings.from_env({"LOCALLLM_HOME": str(home)})
    loaders = {"chat": Loader(load_engine), "embed": Loader(EmbeddingEngine.load)}
    return ModelHost(host_resolver(settings, allow_fetch=False, allow_paths=False), loaders,
                     memory_budget=budget, **kwargs)  # fmt: skip


def test_keep_alive_zero_unloads_when_released_and_pinned_models_stay(starter_home):
    host = make_host(starter_home)
    with host.use("smollm2-135m", keep_alive=0) as loaded:
        assert loaded.name == "smollm2-135m:q4_1" and host.loaded() == [loaded]
    assert host.loaded() == []
    pinned = host.acquire("smollm2-135m", pin=True)
    host.release(pinned)
    again = host.acquire("smollm2-135m", keep_alive=0)  # a request's keep_alive cannot unpin
    host.release(again)
    assert again is pinned and host.loaded() == [pinned] and pinned.expires_at is None
    host.close()
    assert host.loaded() == []


def test_the_least_recently_used_idle_model_is_evicted_to_make_room(starter_home):
    host = make_host(starter_home, budget=lambda: 1)  # nothing fits beside anything else
    chat = host.acquire("smollm2-135m")
    embed = host.acquire("smollm2-135m", "embed")  # chat is in use: it stays
    assert {m.kind for m in host.loaded()} == {"chat", "embed"}
    host.release(chat)
    host.release(embed)
    with host.use("smollm2-135m", n_ctx=512) as small:  # evicts chat, then embed (older first)
        assert host.loaded() == [small]
    assert any("unloaded smollm2-135m:q4_1" in note for note in host.notes)
    host.close()


def test_the_server_resolver_takes_names_only(starter_home, tmp_path):
    host = make_host(starter_home)
    with pytest.raises(ModelNotFound, match="by name"):
        host.acquire(str(tmp_path / "model.gguf"))
    with pytest.raises(ModelNotFound, match="not pulled"):
        host.acquire("qwen2.5-1.5b")


def test_a_loaded_model_is_taken_without_reading_the_store_again(starter_home):
    settings = Settings.from_env({"LOCALLLM_HOME": str(starter_home)})
    resolve = host_resolver(settings, allow_fetch=False, allow_paths=False)
    calls = []

    def counting(ref):
        calls.append(ref)
        return resolve(ref)

    host = ModelHost(counting, {"chat": Loader(load_engine)}, memory_budget=lambda: 2**40)
    first = host.acquire("smollm2-135m")
    host.release(first)
    assert host.acquire_loaded("smollm2-135m:q4_1") is None  # another reference: resolved anew
    for _ in range(3):
        with host.use("smollm2-135m") as again:
            assert again is first
    assert calls == ["smollm2-135m"] and first.users == 0
    host.close()


def test_the_fast_path_still_stamps_the_registry_as_used(starter_home, monkeypatch):
    import dataclasses

    from localllm.engine import host as host_module

    monkeypatch.setattr(host_module, "MARK_USED_EVERY_S", 0.0)  # stamp on every use
    settings = Settings.from_env({"LOCALLLM_HOME": str(starter_home)})
    resolve = host_resolver(settings, allow_fetch=False, allow_paths=False)
    stamps = []

    def stamping(ref):
        return dataclasses.replace(resolve(ref), on_used=lambda: stamps.append(ref))

    host = ModelHost(stamping, {"chat": Loader(load_engine)}, memory_budget=lambda: 2**40)
    for _ in range(3):
        with host.use("smollm2-135m"):
            pass
    assert stamps == ["smollm2-135m"] * 3  # once loaded, and on each fast-path use
    host.close()

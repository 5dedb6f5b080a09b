"""Remote engines: run and summarize over HTTP against real servers on 127.0.0.1.

`localllm serve` (exact token counts through /tokenize and /apply-template) and
llama-cpp-python's own OpenAI-compatible server (a server we did not write,
without those routes: counts are estimated and chats go as messages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import run_cli
from serverproc import free_port, running_server

from localllm.engine import Finished, LoadOptions, SamplingParams, Token
from localllm.engine.http import EndpointConfig, HttpEngine
from localllm.errors import EngineError

pytestmark = pytest.mark.model

GREEDY = SamplingParams(max_tokens=24, temperature=0.0, seed=0)
QUESTION = [{"role": "user", "content": "Name three colours."}]


def text_of(events):
    text, done = "", None
    for event in events:
        if isinstance(event, Token):
            text += event.text
        elif isinstance(event, Finished):
            done = event
    return text, done


def client_home(tmp_path: Path, url: str, **extra) -> Path:
    """A LOCALLLM_HOME with no models, only [engines.box] pointing at url."""
    home = tmp_path / "client"
    (home / "config").mkdir(parents=True)
    lines = ["[engines.box]", f'url = "{url}/v1"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    (home / "config" / "config.toml").write_text("\n".join(lines) + "\n")
    return home


@pytest.fixture(scope="module")
def served(starter_home):
    with running_server(starter_home, "-m", "smollm2-135m", "--parallel", "2",
                        "--ctx", "2048") as url:  # fmt: skip
        yield url


@contextmanager
def llama_cpp_server(model_path: Path, n_ctx: int = 2048):
    """llama-cpp-python's own server (`python -m llama_cpp.server`), with the one change
    localllm makes to llama.cpp's defaults: no extra buffer types where the build has the
    AMX kernels that crash (engine/build.py), or it dies on its first request there."""
    port = free_port()
    start = ("import sys; from localllm.engine.build import avoid_crashing_kernels; "
             "avoid_crashing_kernels(); from llama_cpp.server.__main__ import main; "
             "sys.argv[0] = 'llama_cpp.server'; main()")  # fmt: skip
    cmd = [sys.executable, "-c", start, "--model", str(model_path), "--port",
           str(port), "--n_ctx", str(n_ctx), "--model_alias", "smol"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "llama_cpp.server exited"
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "llama_cpp.server did not start"
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_an_engine_over_http_answers_as_the_model_in_this_process(served, starter_path):
    from localllm.engine.llama import load_engine

    remote = HttpEngine.connect(EndpointConfig("box", served + "/v1"))
    local = load_engine(starter_path, LoadOptions(n_ctx=2048))
    try:
        assert remote.exact and remote.n_ctx == 2048 and remote.parallel == 2
        assert remote.chat_tokens(QUESTION) == local.chat_tokens(QUESTION)
        assert remote.detokenize(remote.tokenize("Hola, ¿qué tal?", add_bos=False)) == (
            "Hola, ¿qué tal?"
        )
        prompt = local.chat_tokens(QUESTION)
        there, done = text_of(remote.stream(prompt, GREEDY))
        assert done.stats.prompt_tokens == len(prompt) and done.stats.completion_tokens >= 1
        # The same tokens, one sequence each side: the server's answer is one the model here
        # also finds likely (no assertion on which near-tied token wins).
        here, _ = text_of(local.stream(prompt, GREEDY))
        assert there.strip() and here.strip()
        same_greedy_path(starter_path, local, prompt, here, there)
    finally:
        remote.close()
        local.close()


def same_greedy_path(model_path, engine, prompt: list[int], a: str, b: str) -> None:
    """Two greedy answers to one prompt agree up to a token where the model is near-tied.

    Kernels round differently between a server's batch and a lone sequence, so the two may
    part where the two likeliest tokens are within a hair; anywhere else they must agree."""
    from localllm.engine.scoring import TokenScorer

    ta = engine.tokenize(a, special=False, add_bos=False)
    tb = engine.tokenize(b, special=False, add_bos=False)
    k = next((i for i, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y), None)
    if k is None:
        return  # the same path (one may be cut shorter by its stop)
    scorer = TokenScorer(model_path, 2048)
    try:
        logprobs = scorer.logprobs(prompt + ta[:k])[-1]
    finally:
        scorer.close()
    gap = abs(float(logprobs[ta[k]] - logprobs[tb[k]]))
    assert gap < 0.1, f"the answers part at token {k} where the model prefers one by {gap:.2f}"


def test_run_on_an_engine_loads_nothing_here_and_answers_as_here(
    served, starter_home, starter_path, tmp_path
):
    from localllm.engine.llama import load_engine

    home = client_home(tmp_path, served)
    question = "Name three colours."
    there = run_cli("run", "-m", "smollm2-135m@box", "--temperature", "0", "--max-tokens",
                    "24", question, home=home)  # fmt: skip
    assert there.returncode == 0, there.stderr
    assert "text goes to engine box" in there.stderr
    assert not (home / "data" / "models").exists()  # nothing fetched or loaded here
    listed = run_cli("history", "list", "--json", home=home)
    assert json.loads(listed.stdout)[0]["model"].endswith("@box")
    here = run_cli("run", "--temperature", "0", "--max-tokens", "24", "--no-save", question,
                   home=starter_home)  # fmt: skip
    assert here.returncode == 0, here.stderr
    local = load_engine(starter_path, LoadOptions(n_ctx=2048))
    try:
        prompt = local.chat_tokens([{"role": "user", "content": question}])
        same_greedy_path(starter_path, local, prompt, here.stdout.strip(), there.stdout.strip())
    finally:
        local.close()


def test_a_server_that_cannot_count_gets_estimates_that_err_high(starter_path, tmp_path):
    with llama_cpp_server(starter_path) as url:
        engine = HttpEngine.connect(EndpointConfig("third", url + "/v1"))
        try:
            assert engine.model == "smol" and not engine.exact
            assert "cannot count tokens" in " ".join(engine.plan.notes)
            prompt = engine.chat_tokens(QUESTION)
            text, done = text_of(engine.stream(prompt, GREEDY))
            assert text.strip() and done.stats.completion_tokens >= 1
            # The server's own count of the prompt is at most the estimate: windows hold.
            assert 0 < done.stats.prompt_tokens <= len(prompt)
            assert engine.n_ctx == 4096  # it does not say its window: the assumption, said
            assert any("assuming 4096" in note for note in engine.plan.notes)
        finally:
            engine.close()
        home = client_home(tmp_path, url, n_ctx=2048)
        result = run_cli("run", "--engine", "box", "--temperature", "0", "--max-tokens", "16",
                         "Say hello.", home=home)  # fmt: skip
        assert result.returncode == 0 and result.stdout.strip(), result.stderr


def test_wrong_key_unknown_model_and_no_server_are_one_line_errors(starter_home, tmp_path):
    with running_server(starter_home, "-m", "smollm2-135m", env={"LOCALLLM_API_KEY": "right"},
                        key="right") as url:  # fmt: skip
        home = client_home(tmp_path, url, api_key_env="BOX_KEY")
        unset = run_cli("run", "--engine", "box", "hi", home=home)
        assert unset.returncode == 1 and "$BOX_KEY, which is not set" in unset.stderr
        wrong = run_cli("run", "--engine", "box", "hi", home=home, BOX_KEY="wrong")
        assert wrong.returncode == 1 and "refused" in wrong.stderr and "$BOX_KEY" in wrong.stderr
        assert "wrong" not in wrong.stderr  # the key itself is never printed
        assert "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
        nosuch = run_cli("run", "-m", "nosuch@box", "hi", home=home, BOX_KEY="right")
        assert nosuch.returncode == 1 and "has no model 'nosuch'" in nosuch.stderr
        tested = run_cli("engines", "test", "box", "--json", home=home, BOX_KEY="right")
        assert tested.returncode == 0, tested.stderr
        report = json.loads(tested.stdout)
        assert report["exact_tokens"] and report["n_ctx"] > 0 and report["answer"]
    closed = client_home(tmp_path / "closed", f"http://127.0.0.1:{free_port()}")
    down = run_cli("run", "--engine", "box", "hi", home=closed)
    assert down.returncode == 1 and "cannot reach engine box" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1


def test_keys_are_not_kept_in_config_files(tmp_path):
    home = tmp_path / "h"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        '[engines.box]\nurl = "http://127.0.0.1:9/v1"\napi_key = "sk-123"\n'
    )
    result = run_cli("engines", "list", home=home)
    assert (
        result.returncode == 1
        and "api_key_env" in result.stderr
        and "sk-123" not in (result.stderr + result.stdout)
    )


def test_summarize_fans_out_on_an_engine_with_the_calls_it_makes_one_by_one(served, tmp_path):
    from test_summarize import long_document

    doc = tmp_path / "doc.txt"
    doc.write_text(long_document(3))
    home = client_home(tmp_path, served, n_ctx=768)  # a small window: several parts

    def summarize(*args):
        result = run_cli("summarize", str(doc), "--engine", "box", "--length", "short",
                         "--json", *args, home=home)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["stats"], result.stderr

    one, _ = summarize("--parallel", "1", "--no-cache")
    fanned, stderr = summarize("--parallel", "2")
    assert "text goes to engine box" in stderr and "2 part(s) at once" in stderr
    assert one["chunks"] >= 3 and one["n_ctx"] == 768
    same = ("chunks", "document_tokens", "map_calls", "reduce_calls", "calls")
    assert {k: fanned[k] for k in same} == {k: one[k] for k in same}
    # The parts are cached as they finish: a second run only makes the final call(s).
    again, _ = summarize()
    assert again["map_calls"] == 0 and again["calls"] < one["calls"]


class FaultyProxy:
    """A reverse proxy in front of a real server that fails the first requests to a path
    (a status with Retry-After, or a dropped connection), then forwards everything."""

    def __init__(self, target: str, path: str, faults: list):
        import http.server
        import threading

        proxy = self
        self.faults, self.seen = list(faults), []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self, method: str):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append((method, self.path))
                if self.path == path and proxy.faults:
                    fault = proxy.faults.pop(0)
                    if fault == "drop":
                        self.close_connection = True
                        self.connection.close()
                        return
                    self.send_response(fault)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = dict(self.headers)
                request = urllib.request.Request(
                    target + self.path, data=body or None, method=method, headers=headers
                )
                try:
                    upstream = urllib.request.urlopen(request, timeout=120)
                except urllib.error.HTTPError as exc:
                    upstream = exc
                with upstream:
                    self.send_response(upstream.status)
                    for key, value in upstream.headers.items():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    while chunk := upstream.read1(65536):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                self.close_connection = True

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_429_503_and_a_reset_connection_are_retried_before_the_answer_starts(served):
    proxy = FaultyProxy(served, "/v1/completions", [429, 503, "drop"])
    engine = HttpEngine.connect(EndpointConfig("box", proxy.url + "/v1"))
    try:
        text, done = text_of(engine.stream(engine.chat_tokens(QUESTION), GREEDY))
        assert text.strip() and done.stats.completion_tokens >= 1
        assert [p for _, p in proxy.seen].count("/v1/completions") == 4  # three faults, then ok
        proxy.faults = [503] * 10  # more than the retries: a one-line error, not a hang
        with pytest.raises(EngineError, match="engine box failed \\(503\\)"):
            list(engine.stream(engine.chat_tokens(QUESTION), GREEDY))
    finally:
        engine.close()
        proxy.close()


def test_a_summary_whose_engine_died_resumes_with_only_the_missing_calls(starter_home, tmp_path):
    from test_summarize import long_document

    doc = tmp_path / "doc.txt"
    doc.write_text(long_document(3))
    port = free_port()
    home = client_home(tmp_path, f"http://127.0.0.1:{port}", n_ctx=768)
    cached = home / "cache" / "summaries"
    args = ["summarize", str(doc), "--engine", "box", "--length", "short", "--json"]
    server_args = ("-m", "smollm2-135m", "--parallel", "1", "--ctx", "768")
    with running_server(starter_home, *server_args, port=port):
        from conftest import cli_command

        environ = {k: v for k, v in os.environ.items() if not k.startswith("LOCALLLM_")}
        environ["LOCALLLM_HOME"] = str(home)
        run = subprocess.Popen([*cli_command(), *args], env=environ, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 300
        while not list(cached.rglob("*.json")) and run.poll() is None:
            assert time.monotonic() < deadline, "no part was summarized"
            time.sleep(0.1)
    # The server is gone mid-run: the command fails with one line, keeping finished parts.
    _, stderr = run.communicate(timeout=120)
    done_parts = len(list(cached.rglob("*.json")))
    assert run.returncode == 1 and "engine box" in stderr, stderr
    assert "Traceback" not in stderr and done_parts >= 1
    with running_server(starter_home, *server_args, port=port):
        resumed = run_cli(*args, home=home)
    assert resumed.returncode == 0, resumed.stderr
    stats = json.loads(resumed.stdout)["stats"]
    assert stats["chunks"] >= 3 and stats["map_calls"] == stats["chunks"] - done_parts


GUARDED = """
import socket, sys
def refuse(self, address, *args):
    print(f"SOCKET-GUARD: connect to {address}", file=sys.stderr)
    raise ConnectionRefusedError("socket guard")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
from localllm.cli import main
sys.argv = ["localllm", *sys.argv[1:]]
main()
"""


def test_nothing_leaves_the_machine_unless_an_engine_is_named(starter_home, tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOCALLLM_")}

    def guarded(*args, home):
        env = {**environ, "LOCALLLM_HOME": str(home)}
        return subprocess.run([sys.executable, "-c", GUARDED, *args], capture_output=True,
                              text=True, timeout=300, env=env)  # fmt: skip

    local = guarded("run", "--max-tokens", "8", "--no-save", "Hello", home=starter_home)
    assert local.returncode == 0 and local.stdout.strip(), local.stderr
    assert "SOCKET-GUARD" not in local.stderr
    # The guard is real: a command that names an engine is stopped by it.
    remote = guarded("run", "--engine", "box", "--max-tokens", "8", "Hello",
                     home=client_home(tmp_path, f"http://127.0.0.1:{free_port()}"))  # fmt: skip
    assert remote.returncode == 1 and "SOCKET-GUARD" in remote.stderr


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def chat_once(engine, tmp_path, question: str):
    """One turn in the chat app (Textual's pilot) on engine: (stored messages, answer)."""
    from localllm.chat.conversation import ChatParams
    from localllm.chat.history import History
    from localllm.tui.app import make_app
    from localllm.tui.controller import ChatController
    from localllm.tui.widgets.prompt_input import PromptInput

    history = History(tmp_path / "history.sqlite3")
    controller = ChatController(engine, "model", history, save_dir=tmp_path,
                                defaults=ChatParams(temperature=0.0, max_tokens=24))  # fmt: skip
    app = make_app(controller, models=lambda: [])
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one(PromptInput).insert(question)
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
    stored = history.get(controller.session.conv.id)
    return stored.messages


@pytest.mark.anyio
async def test_the_chat_app_on_an_engine_answers_as_in_process(served, engine, starter_path,
                                                               tmp_path):  # fmt: skip
    remote = HttpEngine.connect(EndpointConfig("box", served + "/v1"))
    try:
        there = await chat_once(remote, tmp_path / "remote", "Name three colours.")
    finally:
        remote.close()
    here = await chat_once(engine, tmp_path / "local", "Name three colours.")
    assert [m.role for m in there] == [m.role for m in here] and there[-1].role == "assistant"
    asked = [{"role": m.role, "content": m.content} for m in here[:-1]]
    assert asked == [{"role": m.role, "content": m.content} for m in there[:-1]]
    same_greedy_path(starter_path, engine, engine.chat_tokens(asked), here[-1].content,
                     there[-1].content)  # fmt: skip


def test_the_model_picker_offers_the_configured_engines_without_contacting_them(tmp_path):
    from localllm.config import Settings
    from localllm.remote_engines import on_engine
    from localllm.tui.app import model_choices

    home = client_home(tmp_path, f"http://127.0.0.1:{free_port()}", model="qwen3.5-9b")
    choices = model_choices(Settings.from_env({"LOCALLLM_HOME": str(home)}))
    (remote,) = [c for c in choices if "@" in c.name]
    assert remote.name == "qwen3.5-9b@box" and remote.local and "127.0.0.1" in remote.label
    assert on_engine("qwen3.5-9b@box", "box") == "qwen3.5-9b@box"
    assert on_engine(None, "box") == "@box"


def test_doctor_says_where_text_can_go(tmp_path):
    home = client_home(tmp_path, "http://gpu-box:8000")
    result = run_cli("doctor", home=home)
    assert result.returncode == 0, result.stderr
    assert "this machine only; a command that names an engine sends it there: box" in (
        " ".join(result.stdout.split())
    )
    as_json = json.loads(run_cli("doctor", "--json", home=home).stdout)
    assert as_json["remote_engines"] == {"box": "http://gpu-box:8000"}


def test_several_files_share_the_engine_and_come_back_in_order(served, tmp_path):
    from test_summarize import CURIE, long_document

    files = [tmp_path / "long.txt", tmp_path / "short.txt", tmp_path / "mid.txt"]
    files[0].write_text(long_document(1))
    files[1].write_text(CURIE)
    files[2].write_text(CURIE.replace("Curie", "Skłodowska-Curie"))
    home = client_home(tmp_path, served, n_ctx=768)
    out = tmp_path / "out.jsonl"
    result = run_cli("summarize", *map(str, files), "--engine", "box", "--parallel", "2",
                     "--length", "short", "--jsonl", "-o", str(out), home=home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["document"]).name for r in rows] == ["long.txt", "short.txt", "mid.txt"]
    assert all(r["summary"].strip() for r in rows)
    assert rows[0]["stats"]["chunks"] >= 2 and rows[1]["stats"]["calls"] == 1


def test_a_url_that_is_not_an_api_is_a_one_line_error(tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "site" / "v1").mkdir(parents=True)
    (tmp_path / "site" / "v1" / "models").write_text("<html>a login page</html>")
    (tmp_path / "site" / "moved" / "v1" / "models").mkdir(parents=True)  # answered with a 301
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "site"))  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(EngineError, match="other than a JSON object"):
            HttpEngine.connect(EndpointConfig("box", url + "/v1"))
        # A redirect is named, not followed blindly.
        with pytest.raises(EngineError, match="redirects to"):
            HttpEngine.connect(EndpointConfig("box", url + "/moved/v1"))
    finally:
        server.shutdown()
        server.server_close()


def test_a_chat_counts_as_its_text_plus_the_templates_allowance_not_its_json_escapes():
    from localllm.engine.pseudo_tokens import (
        CHAT_ALLOWANCE,
        CHAT_MARK,
        MESSAGE_ALLOWANCE,
        PseudoTokenizer,
        pack_chat,
        unpack_chat,
    )

    text = 'Dijo: "basta".\n\n' * 200  # quotes and newlines: JSON would escape each one
    messages = [{"role": "system", "content": "Resume."}, {"role": "user", "content": text}]
    tokens = PseudoTokenizer()
    packed = pack_chat(messages, {})
    contents = sum(len(tokens.tokenize(m["role"] + m["content"])) for m in messages)
    allowance = len(tokens.tokenize(CHAT_MARK)) + CHAT_ALLOWANCE + 2 * (MESSAGE_ALLOWANCE + 2)
    assert contents <= len(tokens.tokenize(packed)) <= contents + allowance
    as_json = CHAT_MARK + json.dumps({"messages": messages}, ensure_ascii=False)
    assert len(tokens.tokenize(as_json)) > contents + 500  # what the escapes used to cost
    assert unpack_chat(tokens.detokenize(tokens.tokenize(packed))) == {"messages": messages}
    with_tools = pack_chat(messages, {"tools": [{"type": "function"}]})  # not plain: JSON
    assert unpack_chat(with_tools) == {"messages": messages, "tools": [{"type": "function"}]}


def test_ctrl_c_during_a_retry_backoff_ends_the_wait_not_after_it():
    import threading

    import httpx

    from localllm.engine.http_transport import with_retries

    config = EndpointConfig("box", "http://127.0.0.1:9/v1")
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    busy = lambda: httpx.Response(503, headers={"Retry-After": "30"})  # noqa: E731
    assert with_retries(config, busy, cancel) is None
    assert time.monotonic() - started < 5  # not the 30 s the server asked for

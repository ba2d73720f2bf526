"""The `openai` backend against a real vLLM OpenAI-compatible server on 127.0.0.1, and against fakes.

The real server (needs vLLM; skipped without it) serves a tiny model taught three answers. It runs in
its own process group and is stopped at teardown (SIGINT, then SIGKILL of the whole group), whatever
the tests did. The fake servers (stdlib http.server) check the errors for answers vLLM never gives.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kit import NO_VLLM, PROMPTS, TAUGHT, check_completions  # noqa: E402  (shared with the engine tests)

from sparring.errors import SparringError
from sparring.policies.openai_server import OpenAIPolicy
from sparring.policies.policy import SamplingParams, make_policy
from sparring.policies.vllm_server import VLLMServer, free_port

STARTUP_LIMIT_S = 300  # a bound on waiting for the server (it takes ~30 s on 2 busy cores), not a speed check


@pytest.fixture(scope="module")
def needs_vllm():
    pytest.importorskip("vllm", reason=NO_VLLM)


@pytest.fixture(scope="module")
def server(needs_vllm, taught_checkpoint):
    """`http://127.0.0.1:PORT/v1` of a vLLM server serving the taught model as `tiny`, stopped at teardown."""
    with VLLMServer(taught_checkpoint, served_model_name="tiny", startup_timeout_s=STARTUP_LIMIT_S) as running:
        yield running.base_url
    assert running.process is None


@pytest.fixture(scope="module")
def policy(server):
    return make_policy("openai", base_url=server, max_retries=0)


@pytest.fixture(scope="module")
def hf_policy(taught_checkpoint):
    return make_policy("hf", path=taught_checkpoint)


@pytest.fixture
def requests_made(policy, monkeypatch):
    """The requests the policy sends, as (endpoint, keyword arguments)."""
    made = []
    for endpoint, resource in (("completions", policy.client.completions), ("chat", policy.client.chat.completions)):
        create = resource.create

        def recording(*args, _endpoint=endpoint, _create=create, **kwargs):
            made.append((_endpoint, kwargs))
            return _create(*args, **kwargs)

        monkeypatch.setattr(resource, "create", recording)
    return made


# ---- a real vLLM server -------------------------------------------------------------------------

def test_the_served_model_is_found(policy, server):
    assert policy.model == "tiny" and policy.name == f"{server}#tiny"


def test_raw_prompts_go_in_one_request_with_n_completions_each(policy, hf_policy, requests_made):
    out = policy.generate(PROMPTS, SamplingParams(n=3, max_tokens=16))
    assert [endpoint for endpoint, _ in requests_made] == ["completions"]
    assert requests_made[0][1]["prompt"] == PROMPTS and requests_made[0][1]["n"] == 3
    check_completions(out, PROMPTS, hf_policy.tokenizer, n=3, max_tokens=16)
    assert all(c.finish_reason in ("stop", "length") for group in out for c in group)
    assert len({c.text for c in out[3]}) > 1  # the n samples differ


def score(model, completion):
    """The model's log-prob of each of `completion`'s tokens, after its prompt and the tokens before it."""
    import torch

    ids = completion.prompt_token_ids + completion.token_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, len(completion.prompt_token_ids) - 1:-1]  # (T, V)
    return logits.log_softmax(-1).gather(-1, torch.tensor(completion.token_ids)[:, None])[:, 0]  # (T,)


def test_greedy_equals_the_hf_backend(policy, hf_policy):
    import torch

    greedy = SamplingParams(n=2, temperature=0, max_tokens=24)
    ours, theirs = policy.generate(PROMPTS, greedy), hf_policy.generate(PROMPTS, greedy)
    for prompt, mine, hf in zip(PROMPTS, ours, theirs):
        assert len(mine) == 2 and mine[0] == mine[1]  # vLLM refuses n > 1 when greedy: one, copied
        assert mine[0].token_ids == hf[0].token_ids, prompt
        assert mine[0].text == hf[0].text and mine[0].finish_reason == hf[0].finish_reason
        assert mine[0].prompt_token_ids == hf[0].prompt_token_ids
        # the server does not suppress <pad>/<bos> as the hf backend does: score its tokens with hf's model as is
        assert torch.allclose(torch.tensor(mine[0].logprobs), score(hf_policy.model, mine[0]), atol=1e-4)
        assert max(abs(a - b) for a, b in zip(mine[0].logprobs, hf[0].logprobs)) < 0.1  # their small mass
    assert [group[0].text for group in ours[:3]] == [completion for _, completion in TAUGHT]


def test_conversations_go_to_the_chat_endpoint_tokenized_as_hf_does(policy, hf_policy, requests_made):
    prompts = [[{"role": "user", "content": "8 3 2 -> 22"}], "abc",
               [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
                {"role": "user", "content": "5 5 -> 25"}]]
    greedy = SamplingParams(temperature=0, max_tokens=24)
    ours, theirs = policy.generate(prompts, greedy), hf_policy.generate(prompts, greedy)
    assert sorted(endpoint for endpoint, _ in requests_made) == ["chat", "chat", "completions"]
    for (mine,), (hf,) in zip(ours, theirs):
        assert mine.prompt_token_ids == hf.prompt_token_ids  # <bos> included, as the hf backend and TRL have it
        assert mine.token_ids == hf.token_ids and mine.text == hf.text
        assert len(mine.logprobs) == len(mine.token_ids)
    assert ours[0][0].text == "<answer>8*3-2</answer>" and ours[2][0].text == "<answer>5*5</answer>"
    sampled = policy.generate(prompts[:1], SamplingParams(n=3, max_tokens=8))
    assert len(sampled[0]) == 3 and all(len(c.token_ids) == len(c.logprobs) for c in sampled[0])


def test_stop_strings_end_completions(policy):
    out = policy.generate(PROMPTS[:3], SamplingParams(temperature=0, max_tokens=24, stop=("*", "+")))
    assert [group[0].text for group in out] == ["<answer>8", "<answer>5", "think <answer>7"]
    assert all(group[0].finish_reason == "stop" for group in out)


def test_a_seed_gives_each_prompt_its_own_stream_and_reproduces(policy, requests_made):
    params = SamplingParams(n=2, max_tokens=16, seed=7)
    first = policy.generate(["abc", "abc"], params)
    assert [(endpoint, kwargs["seed"]) for endpoint, kwargs in requests_made] == [("completions", 7),
                                                                                  ("completions", 8)]
    assert [c.text for c in first[0]] != [c.text for c in first[1]]  # the same prompt, two streams
    assert policy.generate(["abc", "abc"], params) == first


def test_a_model_the_server_does_not_serve_is_a_clear_error(server):
    policy = OpenAIPolicy(server, model="not-tiny", max_retries=0)
    with pytest.raises(SparringError, match=f"server at {server} answered 404.*'not-tiny'.*does not exist"):
        policy.generate(["abc"], SamplingParams(max_tokens=4))


# ---- no server, or a strange one ----------------------------------------------------------------

def test_a_server_that_is_down_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(SparringError, match=f"cannot reach the OpenAI-compatible server at {url} .*Is it running"):
        OpenAIPolicy(url, max_retries=0)  # asks for the served model
    policy = OpenAIPolicy(url, model="tiny", max_retries=0)
    with pytest.raises(SparringError, match="cannot reach"):
        policy.generate(["abc", [{"role": "user", "content": "hi"}]], SamplingParams(max_tokens=4))


class FakeServer(BaseHTTPRequestHandler):
    answers: dict = {}  # path -> JSON body

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def _answer(self):
        body = json.dumps(self.answers.get(self.path, {"error": "no such route"})).encode()
        self.send_response(200 if self.path in self.answers else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    """Serve `answers` (path -> JSON) on 127.0.0.1; yields (base_url, answers)."""
    answers = {}
    handler = type("Handler", (FakeServer,), {"answers": answers})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", answers
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_a_server_with_no_model_says_to_name_one(fake_server):
    url, answers = fake_server
    answers["/v1/models"] = {"object": "list", "data": []}
    with pytest.raises(SparringError, match=f"server at {url} lists no model.*pass model="):
        OpenAIPolicy(url, max_retries=0)


def test_a_malformed_answer_is_a_clear_error(fake_server):
    url, answers = fake_server
    choice = {"index": 0, "text": "hi", "finish_reason": "stop", "logprobs": None}
    answers["/v1/completions"] = {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                                  "choices": [choice]}
    policy = OpenAIPolicy(url, model="m", max_retries=0)
    out = policy.generate(["a"], SamplingParams(max_tokens=4))  # a plain OpenAI answer: no ids, no log-probs
    assert out[0][0].text == "hi" and out[0][0].token_ids is None and out[0][0].logprobs is None
    with pytest.raises(SparringError, match=f"server at {url} answered 1 completions for 2 prompt.*malformed"):
        policy.generate(["a", "b"], SamplingParams(max_tokens=4))
    with pytest.raises(SparringError, match="answered 404 to a request for model 'm'"):
        policy.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_tokens=4))  # no chat route


@pytest.mark.parametrize("kwargs,message", [
    ({"base_url": "127.0.0.1:8000/v1"}, "must be an http\\(s\\) URL"),
    ({"base_url": "http://127.0.0.1:8000/v1", "concurrency": 0}, "concurrency must be an integer >= 1"),
])
def test_bad_arguments_say_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OpenAIPolicy(model="m", **kwargs)

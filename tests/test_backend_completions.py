"""The completions client and icm's llama.cpp server, with the real packaged model.

One server per test session (`server_url`, also used by the other backend test files).
The reference for the numbers is llama-cpp-python's own high-level API run in this process
(`Llama(logits_all=True).create_completion(logprobs=20)`), which shares no code with the
server beyond llama.cpp itself.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from icm.backends.base import label_logprobs
from icm.backends.completions import (
    CompletionsScorer,
    RetryPolicy,
    api_key_from_environment,
    normalize_base_url,
    top_logprobs_of,
)
from icm.errors import BackendError, ConfigError

FLOOR = math.log(1e-5)
FAST_RETRY = RetryPolicy(retries=1, backoff=0.01)

# ---------------------------------------------------------------------------------------
# The shared server
# ---------------------------------------------------------------------------------------

_shared: dict[str, Any] = {}


def shared_server() -> Any:
    """icm's embedded server on the packaged model, started once per test process."""
    if "server" not in _shared:
        from icm.backends.default_model import packaged_model_path
        from icm.backends.embedded import embedded_server

        stack = contextlib.ExitStack()
        _shared["server"] = stack.enter_context(embedded_server(packaged_model_path()))
        atexit.register(stack.close)
    return _shared["server"]


@pytest.fixture(scope="session")
def server_url() -> str:
    return str(shared_server().base_url)


@pytest.fixture(scope="session")
def vllm_shape_url(server_url: str) -> Any:
    """The vLLM-shape server (tests/vllm_shape_server.py) in front of the shared server."""
    from tests.vllm_shape_server import VllmShapeServer

    with VllmShapeServer(server_url) as server:
        yield server.url


@pytest.fixture(params=["llama.cpp", "vllm-shape"])
def scoring_url(request: pytest.FixtureRequest, server_url: str) -> str:
    """The same model behind icm's llama.cpp server and behind vLLM's response shape."""
    if request.param == "llama.cpp":
        return server_url
    return str(request.getfixturevalue("vllm_shape_url"))


@pytest.fixture(scope="session")
def model_file() -> Path:
    from icm.backends.default_model import packaged_model_path

    return packaged_model_path()


def icm_prompts(n: int, n_demos: int, seed: int = 0) -> list[str]:
    """Many-shot prompts as the search renders them: labeled demonstrations, then a claim."""
    from icm.testbeds import get_testbed

    claims = get_testbed("arithmetic").load("train").claims[:60]
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        picked = rng.sample(claims, n_demos + 1)
        demos = "".join(
            c.prompt + ("True" if c.gold else "False") + "\n\n" for c in picked[:n_demos]
        )
        prompts.append(demos + picked[-1].prompt)
    return prompts


def complete(url: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/completions", json=body, timeout=60, trust_env=False)


# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------


def test_label_logprobs_sums_tokens_containing_each_word_case_insensitively() -> None:
    top = {" True": math.log(0.5), "true": math.log(0.1), " FALSE": math.log(0.2), "7": -1.0}
    lt, lf = label_logprobs(top)
    assert lt == pytest.approx(math.log(0.6 + 1e-5))
    assert lf == pytest.approx(math.log(0.2 + 1e-5))


def test_label_logprobs_ignores_tokens_with_both_words_or_neither() -> None:
    top = {"TrueFalse": math.log(0.9), " maybe": math.log(0.05), " False": math.log(0.01)}
    lt, lf = label_logprobs(top)
    assert lt == pytest.approx(FLOOR)
    assert lf == pytest.approx(math.log(0.01 + 1e-5))


def test_label_logprobs_floor_when_no_label_word_is_in_the_top_k() -> None:
    assert label_logprobs({"1": -0.9, "2": -1.2}) == (pytest.approx(FLOOR), pytest.approx(FLOOR))
    assert label_logprobs({}, floor=1e-3) == (
        pytest.approx(math.log(1e-3)),
        pytest.approx(math.log(1e-3)),
    )


def test_label_logprobs_uses_the_testbed_label_words() -> None:
    top = {" Yes": math.log(0.7), " No": math.log(0.2), " True": math.log(0.1)}
    assert label_logprobs(top, ("Yes", "No")) == (
        pytest.approx(math.log(0.7 + 1e-5)),
        pytest.approx(math.log(0.2 + 1e-5)),
    )


@pytest.mark.parametrize(
    "response",
    [
        # OpenAI, vLLM, llama-cpp-python
        {"choices": [{"logprobs": {"top_logprobs": [{" True": -0.5, " False": -1.5}]}}]},
        # a list of {token, logprob}
        {
            "choices": [
                {
                    "logprobs": {
                        "top_logprobs": [
                            [
                                {"token": " True", "logprob": -0.5},
                                {"token": " False", "logprob": -1.5},
                            ]
                        ]
                    }
                }
            ]
        },
        # llama.cpp server's OpenAI-compatible answer (chat-style content list)
        {
            "choices": [
                {
                    "logprobs": {
                        "content": [
                            {
                                "token": " True",
                                "logprob": -0.5,
                                "top_logprobs": [
                                    {"token": " True", "logprob": -0.5},
                                    {"token": " False", "logprob": -1.5},
                                ],
                            }
                        ]
                    }
                }
            ]
        },
        # llama.cpp server's native /completion
        {
            "completion_probabilities": [
                {
                    "top_logprobs": [
                        {"token": " True", "logprob": -0.5},
                        {"token": " False", "logprob": -1.5},
                    ]
                }
            ]
        },
    ],
)
def test_top_logprobs_of_reads_every_known_response_shape(response: dict[str, Any]) -> None:
    assert top_logprobs_of(response) == {" True": -0.5, " False": -1.5}


def test_top_logprobs_of_is_none_without_logprobs() -> None:
    assert top_logprobs_of({"choices": [{"text": " True", "logprobs": None}]}) is None
    assert top_logprobs_of({"choices": []}) is None
    assert top_logprobs_of([1, 2]) is None


def test_base_urls_are_normalized_and_checked() -> None:
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    with pytest.raises(ConfigError, match="--base-url"):
        normalize_base_url("h:8000")


def test_api_key_comes_from_the_environment_before_dot_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ICM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    env = tmp_path / ".env"
    env.write_text("# keys\nexport OPENAI_API_KEY='sk-from-file'\nOTHER=1\n")
    assert api_key_from_environment(env) == "sk-from-file"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert api_key_from_environment(env) == "sk-openai"
    monkeypatch.setenv("ICM_API_KEY", "sk-icm")
    assert api_key_from_environment(env) == "sk-icm"
    monkeypatch.delenv("ICM_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert api_key_from_environment(tmp_path / "missing.env") is None


# ---------------------------------------------------------------------------------------
# The real server
# ---------------------------------------------------------------------------------------


@pytest.mark.model
def test_real_prompts_give_finite_label_logprobs_and_the_same_numbers_twice(
    scoring_url: str,
) -> None:
    prompts = icm_prompts(4, n_demos=3, seed=1)
    with CompletionsScorer([scoring_url], "embedded", retry=FAST_RETRY) as scorer:
        first = scorer.score_prompts(prompts)
        again = scorer.score_prompts(list(reversed(prompts)))[::-1]
        assert scorer.stats.requests == 8
        assert scorer.stats.prompt_tokens > 8 * 50
        assert scorer.stats.prompt_chars == 2 * sum(len(p.rstrip(" ")) for p in prompts)
    for lt, lf in first:
        assert math.isfinite(lt) and math.isfinite(lf)
        # With the trailing space dropped, ' True'/' False' are the model's top answers.
        assert max(lt, lf) > math.log(0.1)
    assert again == first


@pytest.mark.model
def test_scores_equal_llama_cpp_pythons_own_logprobs(server_url: str, model_file: Path) -> None:
    import llama_cpp

    prompts = [
        icm_prompts(1, n_demos=2, seed=2)[0],
        *icm_prompts(2, n_demos=1, seed=2),
        icm_prompts(1, n_demos=0, seed=3)[0],
    ]
    with CompletionsScorer([server_url], "embedded", retry=FAST_RETRY) as scorer:
        ours = scorer.score_prompts(prompts)
        sent = [scorer.prepare(p) for p in prompts]
    with CompletionsScorer(
        [server_url], "embedded", retry=FAST_RETRY, keep_trailing_space=True
    ) as scorer:
        ours.append(scorer.score_prompts(prompts[:1])[0])
        sent.append(prompts[0])  # with the trailing space: digits, not labels, come next
    reference = llama_cpp.Llama(
        str(model_file), logits_all=True, n_ctx=256, n_threads=2, verbose=False
    )
    try:
        for text, got in zip(sent, ours, strict=True):
            reference.reset()  # evaluate from scratch, no prefix reuse on its side either
            out = reference.create_completion(text, max_tokens=1, logprobs=20, temperature=0)
            want = label_logprobs(out["choices"][0]["logprobs"]["top_logprobs"][0])
            # Measured: equal to ~1e-7 (float32 vs float64 log-softmax).
            assert got == pytest.approx(want, abs=1e-3), text[-60:]
    finally:
        reference.close()
    assert ours[-1] == (pytest.approx(FLOOR), pytest.approx(FLOOR))


@pytest.mark.model
def test_prefix_reuse_gives_exactly_the_cold_numbers(server_url: str) -> None:
    base = icm_prompts(1, n_demos=4, seed=4)[0].rstrip(" ")
    last_label = max(base.rfind("is True"), base.rfind("is False"))
    flipped = "is False" if base.startswith("is True", last_label) else "is True"
    variants = [
        # the last demonstration's label flipped
        base[:last_label] + flipped + base[base.index("\n", last_label) :],
        # another claim to judge
        base[: base.rfind("Question:")] + icm_prompts(1, 0, seed=5)[0].rstrip(" "),
        base + " x",  # differs only at the very end
        base[:-3],  # a prefix of the cached prompt
    ]
    assert all(v != base for v in variants)
    for variant in variants:
        cold = complete(server_url, prompt=variant, logprobs=20, cache_prompt=False).json()
        assert complete(server_url, prompt=base, logprobs=20).status_code == 200
        warm = complete(server_url, prompt=variant, logprobs=20).json()
        assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] > 0, variant[-40:]
        assert cold["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
        assert warm["choices"][0]["logprobs"] == cold["choices"][0]["logprobs"], variant[-40:]


@pytest.mark.model
def test_results_come_back_in_the_callers_order(scoring_url: str) -> None:
    prompts = icm_prompts(6, n_demos=2, seed=6)
    with CompletionsScorer([scoring_url], "embedded", retry=FAST_RETRY, concurrency=3) as scorer:
        one_by_one = [scorer.score_prompts([p])[0] for p in prompts]
        shuffled = prompts[:]
        random.Random(0).shuffle(shuffled)
        together = scorer.score_prompts([*shuffled, shuffled[0]])
    expected = {p: s for p, s in zip(prompts, one_by_one, strict=True)}
    assert together == [expected[p] for p in [*shuffled, shuffled[0]]]
    assert len(set(one_by_one)) == len(prompts)  # distinct prompts, distinct numbers


@pytest.mark.model
def test_server_describes_its_model_and_answers_health(server_url: str) -> None:
    root = server_url.removesuffix("/v1")
    assert httpx.get(root + "/health", trust_env=False).json() == {"status": "ok"}
    card = httpx.get(server_url + "/models", trust_env=False).json()["data"][0]
    assert card["id"] == "gemma-3-270m-q4_k_m"
    assert card["icm"]["general_name"] == "Gemma 3 270m"
    assert card["icm"]["instruction_tuned"] is False
    assert card["icm"]["fingerprint"].startswith("sha256:")  # of the whole file
    with CompletionsScorer([server_url], "embedded", retry=FAST_RETRY) as scorer:
        assert scorer.model == "gemma-3-270m-q4_k_m"
        assert card["icm"]["fingerprint"] in scorer.model_id
        assert "trailing space stripped" in scorer.model_id
        assert scorer.warnings == []


@pytest.mark.model
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prompt": "x", "max_tokens": 5}, 400, "'max_tokens' must be 0 or 1"),
        ({"prompt": "x", "max_tokens": 1, "temperature": 0.7}, 400, "temperature"),
        ({"prompt": "x", "logprobs": 1000}, 400, "between 0 and"),
        ({"prompt": [1, 2, 3]}, 400, "'prompt' must be a string"),
        ({"prompt": "x", "model": "gpt-4"}, 404, "is not served here"),
        ({"prompt": "x " * 9000}, 400, "more than this server's context"),
    ],
)
def test_server_refuses_bad_requests_clearly(
    server_url: str, body: dict[str, Any], status: int, message: str
) -> None:
    r = complete(server_url, **body)
    assert r.status_code == status
    assert message in r.json()["error"]["message"]


@pytest.mark.model
def test_server_refuses_bad_json(server_url: str) -> None:
    r = httpx.post(server_url + "/completions", content=b"{bad", trust_env=False)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


@pytest.mark.model
def test_a_prompt_list_is_scored_like_single_prompts(server_url: str) -> None:
    prompts = [p.rstrip(" ") for p in icm_prompts(2, n_demos=1, seed=7)]
    together = complete(server_url, prompt=prompts, logprobs=5, max_tokens=0).json()
    assert [c["index"] for c in together["choices"]] == [0, 1]
    for prompt, choice in zip(prompts, together["choices"], strict=True):
        alone = complete(server_url, prompt=prompt, logprobs=5, max_tokens=0).json()
        assert choice["logprobs"]["top_logprobs"] == alone["choices"][0]["logprobs"]["top_logprobs"]
        assert choice["text"] == ""


@pytest.mark.model
@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("llama.cpp", r"/v1/completions: HTTP 404: model 'llama-70b'"),
        ("vllm-shape", r"/v1/completions: HTTP 404: The model `llama-70b` does not exist.$"),
    ],
)
def test_a_wrong_model_name_is_a_clear_backend_error(
    server: str, message: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("server_url" if server == "llama.cpp" else "vllm_shape_url")
    with (
        CompletionsScorer([url], "llama-70b", retry=FAST_RETRY) as scorer,
        pytest.raises(BackendError, match=message),
    ):
        scorer.score_prompts(["Question: x\nClaim: y\nI think this claim is "])


@pytest.mark.model
def test_vllm_shaped_answers_give_the_same_scores_as_llama_cpp(
    server_url: str, vllm_shape_url: str
) -> None:
    prompts = icm_prompts(3, n_demos=2, seed=7)
    with CompletionsScorer([server_url], "embedded", retry=FAST_RETRY) as scorer:
        direct = scorer.score_prompts(prompts)
    with CompletionsScorer([vllm_shape_url], "embedded", retry=FAST_RETRY) as scorer:
        assert scorer.model == "vllm-model"
        through_vllm_shape = scorer.score_prompts(prompts)
        assert scorer.stats.answers_without_cached_token_details == 0
        assert scorer.warnings == []
    assert through_vllm_shape == direct

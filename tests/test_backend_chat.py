"""The zero-shot chat baseline's client (backends/chat.py) against a server in vLLM's shape
(tests/vllm_shape_server.py): the URL as docs/replicate.md gives it, the API key."""

from __future__ import annotations

from pathlib import Path

import pytest

from icm.backends.chat import ChatScorer
from icm.errors import BackendError
from tests.vllm_shape_server import VllmShapeServer

PROMPT = "Question: What is 2 + 2?\nClaim: 2 + 2 = 4\nI think this claim is "
KEY = "sk-chat-test-7d1e"


@pytest.mark.parametrize("suffix", ["/v1", "", "/v1/"])
def test_chat_base_url_with_or_without_v1_and_the_api_key(
    suffix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./.env
    monkeypatch.delenv("ICM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with VllmShapeServer(api_key=KEY) as server:
        base = server.url.removesuffix("/v1") + suffix
        with ChatScorer(base, None, retries=0) as scorer:
            [(lt, lf)] = scorer.score_prompts([PROMPT])
        assert scorer.model == "vllm-model"
        assert [path for path, _ in server.requests] == ["/v1/models", "/v1/chat/completions"]
        assert {auth for _, auth in server.requests} == {f"Bearer {KEY}"}
    assert lt > lf


def test_chat_without_the_key_is_one_line_naming_the_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ICM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with VllmShapeServer(api_key=KEY) as server, pytest.raises(BackendError) as err:
        ChatScorer(server.url, None, retries=0)
    assert str(err.value).startswith(server.url + "/models: HTTP 401")

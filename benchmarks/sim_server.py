"""A simulated OpenAI-compatible completions server, standing in for vLLM on a GPU.

    uv run python benchmarks/sim_server.py [--port 0] [--latency-ms 20] [--per-token-ms 0.02]
                                           [--capacity 256]

Each request to POST /v1/completions takes latency + per-token x prompt tokens (prompt
tokens counted as ceil(characters / 4)) from its arrival and holds one of `capacity` slots
meanwhile; more requests than slots wait for one. The answer is worked out within that
time, so this process's own CPU does not lengthen it while it keeps up. The answer has
the shape vLLM gives (top logprobs of the first position, usage.prompt_tokens) with label
scores that are a deterministic function of the prompt (label_gap): for the arithmetic
testbed's claims, the synthetic stand-in model of icm's core computed from the text, so
that a search behaves as with `--model synthetic` and the same prompt always gets the same
answer. GET /v1/models names the model "sim".

GET /stats gives what the server did since start or the last POST /reset: requests,
prompt tokens, work (the sum of the requests' service times), the time-weighted mean and
the maximum of the requests in flight (holding a slot), and the in-flight count over time
(mean per 100 ms). It prints "port N" on stdout once listening.

One asyncio loop in one process, with a hand-written HTTP/1.1 keep-alive parser: at a few
hundred requests a second it must cost the (shared) CPU far less than the client measured
beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import math
import re
import statistics
import time
from typing import Any

LABELS = (" True", " False")


def unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) from a text."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") / 2**64


CLAIM = re.compile(r"Claim: (\d+) \+ (\d+) = (\d+)")


def claim_truth(text: str) -> bool | None:
    """Whether an arithmetic claim ("Claim: a + b = c") is true; None for other text."""
    m = CLAIM.search(text)
    return None if m is None else int(m[1]) + int(m[2]) == int(m[3])


@functools.lru_cache(maxsize=1 << 16)
def demo_agreement(demo: str) -> float | None:
    """+1 when a demonstration's label is its claim's truth, -1 when not, None for other
    text. Cached: the same demonstrations come back in prompt after prompt, and this
    process shares the CPU with the client it measures."""
    demo_truth = claim_truth(demo)
    if demo_truth is None:
        return None
    return 1.0 if demo.rstrip().endswith("True") == demo_truth else -1.0


def label_gap(prompt: str) -> float:
    """The model: log P(True) - log P(False) for the prompt's last claim (the target).

    For arithmetic claims it is icm's synthetic scorer (core/src/synthetic_scorer.cpp,
    default parameters) computed from the text: 1.5 s + 1.0 s x agreement + noise, where s
    is +1 for a true target and -1 for a false one, agreement the mean over the
    demonstrations of +1 when a demonstration's label is its truth and -1 otherwise, and
    the noise a fixed standard-normal draw per target claim. Other text gets a fixed gap
    per target and a little of the whole prompt."""
    *demos, target = prompt.split("\n\n")
    truth = claim_truth(target)
    noise = statistics.NormalDist().inv_cdf(min(max(unit_hash(target), 1e-12), 1 - 1e-12))
    if truth is None:
        return 2.0 * noise + (unit_hash(prompt) - 0.5)
    sign = 1.0 if truth else -1.0
    agree = [a for a in map(demo_agreement, demos) if a is not None]
    agreement = sum(agree) / len(agree) if agree else 0.0
    return 1.5 * sign + 1.0 * sign * agreement + 1.0 * noise


def label_logprobs(prompt: str) -> dict[str, float]:
    gap = max(-30.0, min(30.0, label_gap(prompt)))
    lt = -math.log1p(math.exp(-gap)) + math.log(0.9)  # 10% of the mass on other tokens
    lf = -math.log1p(math.exp(gap)) + math.log(0.9)
    top = {LABELS[0]: lt, LABELS[1]: lf}
    # 18 more entries, as a server asked for logprobs=20 sends: 10% of the mass.
    top.update({f" filler{i}": math.log(0.1 / 18) for i in range(18)})
    return top


class SimServer:
    def __init__(self, latency: float, per_token: float, capacity: int) -> None:
        self.latency = latency
        self.per_token = per_token
        self.capacity = capacity
        self.slots = asyncio.Semaphore(capacity)
        self.reset()

    def reset(self) -> None:
        now = time.monotonic()
        self.started = now
        self.requests = 0
        self.prompt_tokens = 0
        self.work = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.area = 0.0  # integral of in_flight dt
        self.last_change = now
        self.events: list[tuple[float, int]] = [(now, 0)]

    def _change(self, delta: int) -> None:
        now = time.monotonic()
        self.area += self.in_flight * (now - self.last_change)
        self.last_change = now
        self.in_flight += delta
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.events.append((now, self.in_flight))

    async def complete(self, body: dict[str, Any], arrival: float) -> dict[str, Any]:
        """The answer to a completion request that arrived at `arrival` (monotonic time)."""
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            prompt = prompt[0]
        tokens = max(1, math.ceil(len(prompt) / 4))
        service = self.latency + self.per_token * tokens
        waited = self.slots.locked()
        async with self.slots:
            self._change(+1)
            try:
                # Served from its arrival (or from when a slot freed), and the answer worked
                # out within the service time, as a GPU's would be: this process's own CPU
                # (~0.4 ms for a 256-claim prompt, one event loop) must not queue a wave of
                # requests one after another.
                done_at = (time.monotonic() if waited else arrival) + service
                top = label_logprobs(prompt)
                await asyncio.sleep(max(0.0, done_at - time.monotonic()))
            finally:
                self._change(-1)
        self.requests += 1
        self.prompt_tokens += tokens
        self.work += service
        return {
            "id": f"cmpl-{self.requests}",
            "object": "text_completion",
            "model": body.get("model", "sim"),
            "choices": [
                {
                    "index": 0,
                    "text": LABELS[0],
                    "logprobs": {
                        "tokens": [LABELS[0]],
                        "token_logprobs": [top[LABELS[0]]],
                        "top_logprobs": [top],
                    },
                    "finish_reason": "length",
                }
            ],
            "usage": {
                "prompt_tokens": tokens,
                "completion_tokens": 1,
                "total_tokens": tokens + 1,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        area = self.area + self.in_flight * (now - self.last_change)
        elapsed = max(now - self.started, 1e-9)
        # In flight over time: the time-weighted mean per 100 ms.
        timeline: list[float] = []
        bucket, acc = 0.1, 0.0
        t0 = self.started
        edge = t0 + bucket
        for (t, n), (t_next, _) in zip(self.events, [*self.events[1:], (now, 0)], strict=True):
            while t_next > edge:
                acc += n * (edge - max(t, edge - bucket))
                timeline.append(round(acc / bucket, 2))
                acc, t = 0.0, edge
                edge += bucket
            acc += n * (t_next - max(t, edge - bucket))
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "work_seconds": self.work,
            "capacity": self.capacity,
            "seconds": elapsed,
            "mean_in_flight": area / elapsed,
            "max_in_flight": self.max_in_flight,
            "in_flight_per_100ms": timeline,
        }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line[:15].lower() == "content-length:":
                        length = int(line[15:].strip())
                raw = await reader.readexactly(length) if length else b""
                arrival = time.monotonic()
                # Let the other requests that arrived with this one take their arrival
                # times before any answer is worked out.
                await asyncio.sleep(0)
                status, answer = 200, None
                if method == "POST" and path.endswith("/completions"):
                    answer = await self.complete(json.loads(raw), arrival)
                elif method == "GET" and path.endswith("/models"):
                    answer = {"object": "list", "data": [{"id": "sim", "object": "model"}]}
                elif method == "GET" and path == "/stats":
                    answer = self.stats()
                elif method == "POST" and path == "/reset":
                    self.reset()
                    answer = {"ok": True}
                else:
                    status, answer = 404, {"error": {"message": f"no {method} {path}"}}
                data = json.dumps(answer).encode()
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n"
                    % (status, b"OK" if status == 200 else b"NF", len(data))
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(args: argparse.Namespace) -> None:
    sim = SimServer(args.latency_ms / 1000, args.per_token_ms / 1000, args.capacity)
    server = await asyncio.start_server(sim.handle, "127.0.0.1", args.port, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--per-token-ms", type=float, default=0.02)
    p.add_argument("--capacity", type=int, default=256)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()

"""Score the capitals prompts with the fine-tuned tiny model in process, on the GPU when
there is one (bfloat16) or on the CPU (float32); print the gaps as JSON."""

import json
import sys

import torch

from icm.backends.transformers_scorer import TransformersScorer, load_causal_lm
from icm.testbeds import LoadOptions, get_testbed

loaded = load_causal_lm(sys.argv[1])
p = next(loaded.model.parameters())
prompts = [c.prompt for c in get_testbed("capitals").load("train", LoadOptions(size=32)).claims]
scorer = TransformersScorer(loaded)
scores = scorer.score_prompts(prompts)
print(
    json.dumps(
        {
            "device": str(p.device),
            "dtype": str(p.dtype),
            "cuda": torch.cuda.is_available(),
            "gaps": [t - f for t, f in scores],
        }
    )
)

"""Make a tiny random causal LM (Llama architecture) with a small BPE tokenizer trained on
the capitals prompts, for checking icm's GPU code paths without a real model's weights."""

import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from icm.testbeds import LoadOptions, get_testbed

out = Path(sys.argv[1])
table = get_testbed("capitals").load("train", LoadOptions(size=64, seed=0))
texts = [c.prompt + w for c in table.claims for w in (" True", " False", "True", "False")]
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(
    vocab_size=600,
    special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
)
tok.train_from_iterator(texts, trainer)
fast = PreTrainedTokenizerFast(
    tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
)
fast.save_pretrained(out)
cfg = LlamaConfig(
    vocab_size=len(fast),
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
    bos_token_id=fast.bos_token_id,
    eos_token_id=fast.eos_token_id,
    pad_token_id=fast.pad_token_id,
)
torch.manual_seed(0)
LlamaForCausalLM(cfg).save_pretrained(out)
print(out, len(fast), sum(p.stat().st_size for p in out.iterdir()))

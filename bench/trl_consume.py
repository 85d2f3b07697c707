"""A real trainer consumes the shards: TRL's SFTTrainer fine-tunes a small, randomly initialised Llama on them.

    python bench/trl_consume.py runs/radiology-coding/shards --steps 60

Nothing is downloaded: the tokenizer is a byte-level BPE trained here on the shards' own text, and the model is
built from a config. Runs on the GPU when there is one (bf16), else on the CPU. It prints the loss before and
after training (train and val), the share of tokens that carry loss (completion only), and samples/s.
Needs `trl` (not part of datakit's own dependencies).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from datasets import load_dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import SFTConfig, SFTTrainer

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


def train_tokenizer(texts: list[str], vocab: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(tokenizer: PreTrainedTokenizerFast, hidden: int = 256, layers: int = 4) -> LlamaForCausalLM:
    """A randomly initialised Llama sized for a smoke run (nothing downloaded)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", type=Path)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    manifest = json.loads((args.shards / "manifest.json").read_text())
    files = {s: str(args.shards / f"{s}-*.parquet") for s, v in manifest["splits"].items() if v["rows"]}
    ds = load_dataset("parquet", data_files=files)
    texts = [
        m["content"]
        for row in ds["train"].select(range(min(2000, len(ds["train"]))))
        for m in row["prompt"] + row["completion"]
    ]
    tokenizer = train_tokenizer(texts, vocab=4096)
    cuda = torch.cuda.is_available()
    model = tiny_llama(tokenizer, args.hidden, args.layers)
    with tempfile.TemporaryDirectory() as out:
        sft = SFTConfig(
            output_dir=out,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch,
            per_device_eval_batch_size=args.batch,
            learning_rate=2e-3,
            warmup_steps=5,
            logging_steps=max(1, args.steps // 6),
            max_length=1024,
            bf16=cuda,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            completion_only_loss=True,
            seed=0,
        )
        trainer = SFTTrainer(
            model=model, args=sft, train_dataset=ds["train"], eval_dataset=ds["val"], processing_class=tokenizer
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        labelled = (batch["labels"] != -100).sum().item() / batch["attention_mask"].sum().item()
        before = trainer.evaluate()["eval_loss"]
        t0 = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - t0
        after = trainer.evaluate()["eval_loss"]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    figures = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "train_examples": len(ds["train"]),
        "val_examples": len(ds.get("val", [])),
        "steps": args.steps,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "share_of_tokens_with_loss": round(labelled, 3),
        "train_loss_first_log": round(losses[0], 3),
        "train_loss_last_log": round(losses[-1], 3),
        "val_loss_before": round(before, 3),
        "val_loss_after": round(after, 3),
        "samples_per_second": round(args.steps * args.batch / seconds, 1),
        "train_runtime_s": round(result.metrics["train_runtime"], 1),
    }
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    if not (math.isfinite(after) and after < before):
        raise SystemExit("val loss did not fall: the trainer did not learn from the shards")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

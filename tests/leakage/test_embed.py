"""The full-model encoder: the pipelined GPU loop gives the vectors `SentenceTransformer.encode` gives."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from datakit.leakage.embed import TransformerEncoder, resolve_model

TEXTS = [
    "No acute cardiopulmonary abnormality.",
    "Small left pleural effusion, increased from prior. The heart is normal in size.",
    "Disc desiccation at L4-5 with a small central disc bulge. No canal stenosis. Conus terminates at L1.",
    "",
    "x",
    "Mild degenerative disc disease at L4-5 without stenosis. " * 30,  # longer than max_seq_length: truncated
] * 7


def test_pipelined_batches_match_sentence_transformers_encode() -> None:
    source = resolve_model("all-MiniLM-L6-v2")
    plain = TransformerEncoder(source, device="cpu", batch_size=8, pipelined=False)
    piped = TransformerEncoder(source, device="cpu", batch_size=5, pipelined=True, tokenizer_threads=3)
    a, b = plain.encode(TEXTS), piped.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), plain.dim)
    assert np.abs(a - b).max() < 1e-4  # same vectors, in the input order, whatever the batch boundaries
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert piped.encode([]).shape == (0, plain.dim)
    assert plain.model_id == piped.model_id  # same device and precision: one cache


def test_gpu_pipeline_agrees_with_the_cpu_model() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU (CI never has one; run on the device machine)")
    source = resolve_model("all-MiniLM-L6-v2")
    cpu = TransformerEncoder(source, device="cpu", batch_size=16)
    gpu = TransformerEncoder(source, device="cuda", batch_size=16)
    assert gpu.pipelined and gpu.model_id.endswith(":fp16") and gpu.model_id != cpu.model_id
    cos = (cpu.encode(TEXTS) * gpu.encode(TEXTS)).sum(axis=1)
    assert cos.min() > 0.999  # fp16 on the GPU


def test_feed_tokenises_each_text_once_longest_first_and_restores_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    enc = TransformerEncoder(resolve_model("all-MiniLM-L6-v2"), device="cpu", batch_size=4, tokenizer_threads=2)
    seen, widths = [], []
    for idx, features in enc.feed(TEXTS):
        assert os.environ["TOKENIZERS_PARALLELISM"] == "false"  # the pool, not rayon, uses the cores
        expected = enc._model.preprocess([TEXTS[i] for i in idx])
        assert all(bool((features[k] == expected[k]).all()) for k in ("input_ids", "attention_mask"))
        seen.extend(idx.tolist())
        widths.append(features["input_ids"].shape[1])
    assert sorted(seen) == list(range(len(TEXTS)))
    assert widths == sorted(widths, reverse=True) and widths[0] == enc.max_seq_length  # longest first, truncated
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
    assert list(enc.feed([])) == []


def test_feed_tokenises_the_next_batches_while_the_consumer_holds_one() -> None:
    """The overlap the GPU loop relies on: while the model (here the test) works on batch 0, later batches are
    being tokenised. Without read-ahead the wait below could never end (the guard's timeout is not a speed test)."""
    enc = TransformerEncoder(resolve_model("all-MiniLM-L6-v2"), device="cpu", batch_size=3, tokenizer_threads=2)
    started: list[threading.Event] = [threading.Event() for _ in range(len(TEXTS) // 3 + 1)]
    preprocess = enc._model.preprocess
    calls = iter(range(len(started)))

    def spy(texts: list[str]) -> dict:
        started[next(calls)].set()
        return preprocess(texts)

    enc._model.preprocess = spy  # type: ignore[method-assign]
    feed = enc.feed(TEXTS)
    next(feed)  # batch 0 is in the consumer's hands and not given back
    assert started[1].wait(timeout=60) and started[2].wait(timeout=60)
    assert sum(len(idx) for idx, _ in feed) == len(TEXTS) - 3

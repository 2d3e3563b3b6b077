#!/usr/bin/env python3
"""kvtier as the prefix cache of a tiny decoder-only transformer (plain torch, CPU).

A model with random weights (2 layers, grouped-query attention: 4 query heads over 2 KV heads)
serves a stream of prompts that share long prefixes (a few "system prompts" followed by different
user turns). Before computing a prompt it asks kvtier for the longest cached prefix
(match_prefix), loads those blocks' K/V with one get_batch straight into a registered host pool,
computes only the rest, and stores the new full blocks with one put_batch. Half of the stream runs,
the store is closed (a restart: the blocks survive on the NVMe tier), and the other half runs on a
reopened store.

Every prompt is also recomputed from scratch, and its logits must equal the cached run's bit for
bit: both paths run prefill in chunks of one block, so every chunk sees the same shapes and the
same fp16 K/V, whether those came from kvtier or were just computed.

    PYTHONPATH=python KVTIER_LIBRARY=build/libkvtier.so /usr/bin/python3 python/examples/prefix_cache.py
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch

import kvtier

LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB, BLOCK = 2, 4, 2, 16, 256, 16
D_MODEL = HEADS * HEAD_DIM


class TinyDecoder(torch.nn.Module):
    """Pre-norm decoder blocks with rotary-free GQA attention and a SiLU MLP; K/V kept in fp16."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)

        def w(*shape):
            return torch.nn.Parameter(torch.randn(*shape, generator=g) / math.sqrt(shape[-1]),
                                      requires_grad=False)

        self.embed = w(VOCAB, D_MODEL)
        self.pos = w(1024, D_MODEL)
        self.wq = [w(HEADS * HEAD_DIM, D_MODEL) for _ in range(LAYERS)]
        self.wk = [w(KV_HEADS * HEAD_DIM, D_MODEL) for _ in range(LAYERS)]
        self.wv = [w(KV_HEADS * HEAD_DIM, D_MODEL) for _ in range(LAYERS)]
        self.wo = [w(D_MODEL, HEADS * HEAD_DIM) for _ in range(LAYERS)]
        self.w1 = [w(2 * D_MODEL, D_MODEL) for _ in range(LAYERS)]
        self.w2 = [w(D_MODEL, 2 * D_MODEL) for _ in range(LAYERS)]
        self.head = w(VOCAB, D_MODEL)

    @torch.no_grad()
    def chunk(self, tokens: torch.Tensor, start: int, kv: torch.Tensor) -> torch.Tensor:
        """Runs tokens (positions start..start+n) over kv[:, :, :start] (the cache, fp16,
        [layers, 2, max_tokens, kv_heads, head_dim]); writes their K/V into kv and returns their
        logits."""
        n = tokens.shape[0]
        x = self.embed[tokens] + self.pos[start:start + n]
        for l in range(LAYERS):
            h = torch.nn.functional.layer_norm(x, (D_MODEL,))
            q = (h @ self.wq[l].T).view(n, HEADS, HEAD_DIM)
            kv[l, 0, start:start + n] = (h @ self.wk[l].T).view(n, KV_HEADS, HEAD_DIM).half()
            kv[l, 1, start:start + n] = (h @ self.wv[l].T).view(n, KV_HEADS, HEAD_DIM).half()
            k = kv[l, 0, :start + n].float().repeat_interleave(HEADS // KV_HEADS, dim=1)
            v = kv[l, 1, :start + n].float().repeat_interleave(HEADS // KV_HEADS, dim=1)
            scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(HEAD_DIM)
            causal = torch.arange(start + n)[None, :] > (start + torch.arange(n))[:, None]
            scores = scores.masked_fill(causal[None], float("-inf"))
            att = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(n, D_MODEL)
            x = x + att @ self.wo[l].T
            h = torch.nn.functional.layer_norm(x, (D_MODEL,))
            x = x + torch.nn.functional.silu(h @ self.w1[l].T) @ self.w2[l].T
        return torch.nn.functional.layer_norm(x, (D_MODEL,)) @ self.head.T

    def prefill(self, tokens: torch.Tensor, kv: torch.Tensor, start: int) -> torch.Tensor:
        """Computes positions start.. in chunks of one block; logits of the last chunk."""
        logits = None
        for s in range(start, tokens.shape[0], BLOCK):
            logits = self.chunk(tokens[s:s + BLOCK], s, kv)
        return logits


def new_cache(n_tokens: int) -> torch.Tensor:
    return torch.zeros(LAYERS, 2, n_tokens, KV_HEADS, HEAD_DIM, dtype=torch.float16)


def aligned_pool(blocks: int, block_bytes: int) -> torch.Tensor:
    """An engine's host KV pool: 4 KiB-aligned rows (so NVMe reads land in place)."""
    raw = np.zeros(blocks * block_bytes + 4096, np.uint8)
    off = -raw.ctypes.data % 4096
    return torch.from_numpy(raw[off:off + blocks * block_bytes].reshape(blocks, block_bytes))


class PrefixCache:
    """The engine side: match, load, compute the rest, store the new blocks."""

    def __init__(self, store: kvtier.Store, model: TinyDecoder, max_blocks: int):
        self.ns = store.namespace(model="tiny-gqa@seed0", kv_dtype="fp16", layers=LAYERS,
                                  kv_heads=KV_HEADS, head_dim=HEAD_DIM, block_tokens=BLOCK)
        self.model = model
        self.pool = aligned_pool(max_blocks, self.ns.block_bytes)
        store.register_memory(self.pool)
        self.store = store
        self.served_tokens = 0
        self.prompt_tokens = 0

    def close(self) -> None:
        self.store.unregister_memory(self.pool)

    def run(self, prompt: torch.Tensor) -> torch.Tensor:
        n = prompt.shape[0]
        m = self.ns.match_prefix(prompt)
        hit = min(m.prefix_blocks, (n - 1) // BLOCK)  # compute at least the last token
        kv = new_cache(n)
        if hit:
            res = self.ns.get_batch(m.keys[:hit], list(self.pool[:hit]))
            # Blocks can vanish between match and get (eviction): use the loaded prefix only.
            loaded = next((i for i, s in enumerate(res.statuses) if s != "KVT_OK"), hit)
            for b in range(loaded):
                kv[:, :, b * BLOCK:(b + 1) * BLOCK] = (
                    self.pool[b].view(torch.float16).view(LAYERS, 2, BLOCK, KV_HEADS, HEAD_DIM))
            hit = loaded
        logits = self.model.prefill(prompt, kv, hit * BLOCK)
        new = range(hit, len(m.keys))
        if len(new):
            bufs = [kv[:, :, b * BLOCK:(b + 1) * BLOCK].contiguous().view(torch.uint8).view(-1)
                    for b in new]
            self.ns.put_batch([m.keys[b] for b in new],
                              [m.keys[b - 1] if b else None for b in new],
                              [prompt[b * BLOCK:(b + 1) * BLOCK].to(torch.int32) for b in new],
                              bufs)
        self.served_tokens += hit * BLOCK
        self.prompt_tokens += n
        return logits


def make_prompts(count: int, seed: int):
    rnd = random.Random(seed)
    systems = [[rnd.randrange(VOCAB) for _ in range(rnd.choice((128, 160, 192)))]
               for _ in range(4)]
    prompts = []
    for _ in range(count):
        sys_p = rnd.choice(systems)
        user = [rnd.randrange(VOCAB) for _ in range(rnd.randrange(16, 64))]
        prompts.append(torch.tensor(sys_p + user, dtype=torch.int64))
    return prompts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--dir", default=None, help="store directory (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead
    model = TinyDecoder(seed=0)
    prompts = make_prompts(args.prompts, seed=1)
    tmp = tempfile.TemporaryDirectory(prefix="kvtier-prefix-cache-")
    path = args.dir or tmp.name
    opts = dict(host_bytes="256KiB", host_slab_bytes="256KiB", host_mlock=False,  # 64 blocks
                nvme_bytes="64MiB", nvme_segment_bytes="4MiB")
    t_cached = t_full = 0.0
    mismatches = 0
    served = total = 0
    halves = (prompts[:len(prompts) // 2], prompts[len(prompts) // 2:])
    for run, batch in enumerate(halves):
        with kvtier.Store(dir=path, **opts) as st:  # the second open is the restart
            cache = PrefixCache(st, model, max_blocks=64)
            for p in batch:
                t0 = time.perf_counter()
                got = cache.run(p)
                t1 = time.perf_counter()
                want = model.prefill(p, new_cache(p.shape[0]), 0)
                t2 = time.perf_counter()
                t_cached += t1 - t0
                t_full += t2 - t1
                if not torch.equal(got, want):
                    mismatches += 1
            stats = st.stats()
            cache.close()
            served += cache.served_tokens
            total += cache.prompt_tokens
            print(f"run {run + 1}: {len(batch)} prompts, {cache.served_tokens} of "
                  f"{cache.prompt_tokens} prompt tokens served from kvtier "
                  f"({100.0 * cache.served_tokens / cache.prompt_tokens:.1f}%); host hits "
                  f"{stats['tiers']['host'].get('hits', 0)}, NVMe hits "
                  f"{stats['tiers'].get('nvme', {}).get('hits', 0)}, direct reads "
                  f"{stats['engine']['direct_reads']}")
    print(f"total: {served / total:.1%} of prompt tokens served from kvtier; "
          f"time with kvtier {t_cached:.2f} s vs full recompute {t_full:.2f} s "
          f"({t_full / max(t_cached, 1e-9):.2f}x)")
    if mismatches:
        print(f"FAILED: {mismatches} prompts' logits differ from a full recompute")
        return 1
    if served == 0:
        print("FAILED: nothing was served from kvtier")
        return 1
    print("logits equal a full recompute bit for bit for every prompt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

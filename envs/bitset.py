"""Task sets as bitsets of 32-bit words: bit i of a set lives in word i // 32 at position i % 32.

Parents of a task and the assigned tasks of a workflow are such sets, so a test
like "every parent assigned" is one AND over ceil(T / 32) words whatever the
parent count, and a workflow of 256 tasks costs 8 words where the default
16-task padding costs one.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

WORD_BITS = 32


def n_words(t: int) -> int:
    """Words for a set over `t` tasks."""
    return max(1, -(-int(t) // WORD_BITS))


# --- NumPy (host: banks, files) ---

def np_from_flags(flags: np.ndarray) -> np.ndarray:
    """bool [..., T] -> uint32 [..., n_words(T)]."""
    flags = np.asarray(flags, bool)
    t = flags.shape[-1]
    wd = n_words(t)
    padded = np.zeros(flags.shape[:-1] + (wd * WORD_BITS,), bool)
    padded[..., :t] = flags
    weights = np.left_shift(np.uint64(1), np.arange(WORD_BITS, dtype=np.uint64))
    words = (padded.reshape(flags.shape[:-1] + (wd, WORD_BITS)).astype(np.uint64) * weights).sum(axis=-1)
    return words.astype(np.uint32)


def np_flags(words: np.ndarray, t: int) -> np.ndarray:
    """uint32 [..., W] -> bool [..., t] (bits past the words read as unset)."""
    words = np.asarray(words, np.uint32)
    idx = np.arange(t)
    word = np.minimum(idx // WORD_BITS, words.shape[-1] - 1)
    bits = (words[..., word] >> (idx % WORD_BITS).astype(np.uint32)) & 1
    return (bits == 1) & (idx // WORD_BITS < words.shape[-1])


def np_resize(words: np.ndarray, wd: int) -> np.ndarray:
    """The same sets over another word count (extra words zero; dropped words must be empty)."""
    have = words.shape[-1]
    if wd >= have:
        return np.concatenate([words, np.zeros(words.shape[:-1] + (wd - have,), np.uint32)], axis=-1)
    if np.any(words[..., wd:]):
        raise ValueError(f"a set has members past task {wd * WORD_BITS - 1}")
    return words[..., :wd]


# --- JAX (device: the step and the observation) ---

def flags(words, t: int):
    """uint32 [..., W] -> bool [..., t]."""
    idx = np.arange(t)
    if words.shape[-1] == 1:  # the default padding: no gather
        sel = words
    else:
        sel = jnp.take(words, np.asarray(idx // WORD_BITS), axis=-1)
    return ((sel >> jnp.asarray(idx % WORD_BITS, jnp.uint32)) & 1).astype(bool)


def member(words, i):
    """bool [...]: is task `i` (traced int) in each set of `words` [..., W]?"""
    i = jnp.asarray(i, jnp.int32)
    word = words[..., 0] if words.shape[-1] == 1 else jnp.take(words, i // WORD_BITS, axis=-1)
    return ((word >> (i % WORD_BITS).astype(jnp.uint32)) & 1) == 1


def single(i, wd: int):
    """uint32 [wd]: the set {i}."""
    i = jnp.asarray(i, jnp.int32)
    one = jnp.left_shift(jnp.uint32(1), (i % WORD_BITS).astype(jnp.uint32))
    return jnp.where(jnp.arange(wd) == i // WORD_BITS, one, jnp.uint32(0))


def first_n(n, wd: int):
    """uint32 [wd]: the set {0, ..., n - 1}."""
    k = jnp.clip(jnp.asarray(n, jnp.int32) - WORD_BITS * jnp.arange(wd), 0, WORD_BITS)
    partial = jnp.left_shift(jnp.uint32(1), jnp.minimum(k, WORD_BITS - 1).astype(jnp.uint32)) - jnp.uint32(1)
    return jnp.where(k >= WORD_BITS, jnp.uint32(0xFFFFFFFF), partial)


def subset(a, b):
    """bool [...]: a ⊆ b, for a [..., W] and b [..., W] (broadcasting)."""
    return jnp.all((a & ~b) == 0, axis=-1)

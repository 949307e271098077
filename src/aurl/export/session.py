"""An exported ONNX step run by onnxruntime, on numpy arrays: the cache is a list of buffers.

`OnnxStep(path).run(ids, state)` feeds new tokens after the cached ones and returns their logits
and the state with their keys and values added, exactly what `model.step` does with its
`DecodeCache`. The buffers live here: the step reads them and returns only the new keys and
values, which `run` writes into the next free slots (graph.py says why). Only onnxruntime and
numpy are needed (the `aurl[export]` extra).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aurl.export.errors import ExportError, require
from aurl.export.graph import Z_INPUTS, StepLayout
from aurl.export.metadata import LAYOUT_KEY

CHUNK = 512  # most tokens per onnxruntime call; longer inputs are fed in chunks through the cache
CAPACITY_STEP = 64  # cache buffers hold a whole multiple of this many slots


def grown_capacity(end: int) -> int:
    """Slots of a buffer grown to hold `end` tokens: `end` rounded up to a step of about √(12·end).

    Full attention reads every slot of a buffer on every token (those not filled are masked), so
    slack costs about 0.5 µs per slot per token for the small model on a CPU, while a growth
    copies the buffer once, about 3 µs per slot, every step of slots. A step s costs per token
    C·3/s + s/2·0.5 µs at C slots, least at s = √(12·C): 64 slots up to about 500 tokens (short
    pieces read little slack), 320 at 10,000 (few copies).
    """
    step = CAPACITY_STEP * max(1, round(math.sqrt(12 * end) / CAPACITY_STEP))
    return -(-end // step) * step


@dataclass(frozen=True)
class StepState:
    """What one ONNX step hands to the next, for a batch of B streams.

    Run reads a state's buffers and writes into their free slots: step from each state once.

    Attributes:
        beat: (B, 4) int64 beat state (time, bar, bar_time, bar_len).
        past: per layer a key and a value buffer, each (B, H, C, dh) float32, layer 0's key first;
            the first `length` slots are filled.
        length: P, the tokens seen so far.
        z: vae modes: z_piece (B, Zg), z_bar (B, NB, Zb), z_fine (B, NW, Zf); empty otherwise.
        summaries: hierarchical attention: per layer the summary keys and values of the finished
            blocks, each (B, H, S, dh), layer 0's key first; empty for the other kinds.
    """

    beat: np.ndarray
    past: tuple[np.ndarray, ...]
    length: int = 0
    z: tuple[np.ndarray, ...] = ()
    summaries: tuple[np.ndarray, ...] = ()

    def select(self, index: np.ndarray) -> StepState:
        """The state of streams `index` (B',) int: beam reordering, or dropping finished streams."""
        rows = lambda arrays: tuple(a[index] for a in arrays)  # noqa: E731
        return StepState(self.beat[index], rows(self.past), self.length, rows(self.z), rows(self.summaries))

    def reserve(self, end: int) -> StepState:
        """This state with buffers of at least `end` slots (`grown_capacity(end)` when they grow)."""
        capacity = self.past[0].shape[2]
        if end <= capacity:
            return self
        pad = ((0, 0), (0, 0), (0, grown_capacity(end) - capacity), (0, 0))
        return dataclasses.replace(self, past=tuple(np.pad(p, pad) for p in self.past))


class OnnxStep:
    """An onnxruntime session over an aurl ONNX step (fp32 or int8), for one thread at a time (its
    calls share the arrays bound to the session).

    Args:
        path: the .onnx file written by `aurl export`.
        threads: intra-op threads; 0 lets onnxruntime choose (one per core).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        ExportError: the file cannot be loaded or is not an aurl step.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        ort = require("onnxruntime", "running an ONNX model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only: the session must not write to stdout/stderr
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ExportError(
                f"onnxruntime cannot load '{path}': {str(error).splitlines()[0][:160]}"
            ) from None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        if LAYOUT_KEY not in self.metadata:
            raise ExportError(f"'{path}' is not an aurl ONNX export (no {LAYOUT_KEY} metadata)")
        names = {i.name for i in self.session.get_inputs()}
        older = f"'{path}' was exported by an older aurl (its step {{}}); export the model again"
        if "past_length" not in names:
            raise ExportError(older.format("returns the whole cache"))
        self.layout = StepLayout.from_json(self.metadata[LAYOUT_KEY])
        if not names.issuperset(self.layout.summary_past_names):
            raise ExportError(older.format("recomputes every block summary"))
        self._bound: _Binding | None = None  # the last call's binding, reused while it fits

    def start(self, batch: int, z: tuple[np.ndarray, ...] | None = None) -> StepState:
        """The state before the first token: empty cache, start beat, z (vae modes; None: prior mean).

        Args:
            batch: B, the streams decoded together.
            z: z_piece (B, Zg), z_bar (B, NB, Zb), z_fine (B, NW, Zf) as float32; bars and windows
                past those given read the prior mean, as in `model.step`.
        """
        lay = self.layout
        beat = np.tile(np.asarray(lay.start_beat, np.int64), (batch, 1))
        shape = (batch, lay.heads, grown_capacity(1), lay.head_dim)
        past = tuple(np.zeros(shape, np.float32) for _ in lay.past_names)
        none_yet = (batch, lay.heads, 0, lay.head_dim)
        summaries = tuple(np.zeros(none_yet, np.float32) for _ in lay.summary_past_names)
        if lay.latent is None:
            return StepState(beat, past, summaries=summaries)
        if z is None:
            zg, zb, zf = lay.latent
            z = (np.zeros((batch, zg), np.float32), np.zeros((batch, 0, zb), np.float32),
                 np.zeros((batch, 0, zf), np.float32))  # fmt: skip
        z = tuple(np.ascontiguousarray(part, np.float32) for part in z)
        return StepState(beat, past, 0, z, summaries)

    def run(self, ids: np.ndarray, state: StepState) -> tuple[np.ndarray, StepState]:
        """Logits (B, T, V) float32 for ids (B, T) int64 after the tokens in `state`, and the new state.

        Long inputs run in chunks of `CHUNK` tokens through the cache (the same logits as one call):
        the exported attention holds a (T, P + T) score matrix per head, which for one call over a
        16k-token piece would take gigabytes.
        """
        if ids.shape[1] <= CHUNK:
            return self._run(ids, state)
        out = []
        for start in range(0, ids.shape[1], CHUNK):
            logits, state = self._run(ids[:, start : start + CHUNK], state)
            out.append(logits)
        return np.concatenate(out, axis=1), state

    def _run(self, ids: np.ndarray, state: StepState) -> tuple[np.ndarray, StepState]:
        p, t = state.length, ids.shape[1]
        state = state.reserve(p + t)
        bound = self._bound
        if bound is None or not bound.fits(state, ids.shape):
            bound = self._bound = _Binding(self.session, self.layout, state, ids.shape)
        logits, beat, new, finished = bound.run(ids, state)
        for buffer, entries in zip(state.past, new, strict=True):
            buffer[:, :, p : p + t] = entries
        summaries = state.summaries
        if finished and finished[0].shape[2]:  # a block filled up: one summary more per block
            summaries = tuple(np.concatenate(pair, axis=2) for pair in zip(summaries, finished, strict=True))
        return logits, StepState(beat, state.past, p + t, state.z, summaries)


class _Binding:
    """The session's inputs and outputs bound once to arrays for a run of same-shaped calls.

    Token after token, the cache buffers and the latent stay the same arrays and every other
    input and output keeps its shape, so they are bound to the session once (onnxruntime reads
    and writes them in place) and a call only writes the new ids, beat and length into the bound
    input arrays: this saves about a tenth of a small model's step at batch 1 over
    `session.run`, which converts every input and output on every call. A state with other
    buffers (grown, reordered, another block summarised) or another input shape needs a new
    binding. The summaries a call finishes come in arrays onnxruntime allocates (most calls
    finish none).
    """

    def __init__(self, session: Any, layout: StepLayout, state: StepState, shape: tuple[int, ...]) -> None:
        b, t = shape
        self.arrays, self.shape = state.past + state.z + state.summaries, shape
        self.ids, self.beat, self.length = (np.zeros(s, np.int64) for s in (shape, (b, 4), (1,)))
        self.logits = np.empty((b, t, layout.vocab_size), np.float32)
        self.beat_out = np.empty((b, 4), np.int64)
        self.new = [np.empty((b, layout.heads, t, layout.head_dim), np.float32) for _ in layout.new_names]
        self.io = session.io_binding()
        self.session = session
        inputs = {"ids": self.ids, "beat": self.beat, "past_length": self.length}
        if layout.latent is not None:
            inputs.update(zip(Z_INPUTS, state.z, strict=True))
        inputs.update(zip(layout.past_names, state.past, strict=True))
        inputs.update(zip(layout.summary_past_names, state.summaries, strict=True))
        for name, array in inputs.items():
            self.io.bind_cpu_input(name, array)
        outputs: dict[str, np.ndarray] = {"logits": self.logits, "beat_out": self.beat_out}
        outputs.update(zip(layout.new_names, self.new, strict=True))
        for name, array in outputs.items():
            self.io.bind_output(name, "cpu", 0, array.dtype, array.shape, array.ctypes.data)
        self.summary_names, self.n_fixed = layout.summary_new_names, len(outputs)

    def fits(self, state: StepState, shape: tuple[int, ...]) -> bool:
        """Are these the bound buffers, latent and summaries, and ids of the bound shape?"""
        arrays = state.past + state.z + state.summaries
        return shape == self.shape and all(a is b for a, b in zip(arrays, self.arrays, strict=True))

    def run(
        self, ids: np.ndarray, state: StepState
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """Logits (B, T, V) and the next beat (both fresh arrays), the new keys and values (the
        bound output arrays, valid until the next call) and the summaries of finished blocks."""
        self.ids[...] = ids
        self.beat[...] = state.beat
        self.length[0] = state.length
        for name in self.summary_names:  # anew each call: onnxruntime would reuse the last shape
            self.io.bind_output(name, "cpu")
        self.session.run_with_iobinding(self.io)
        # Only hierarchical steps have outputs of their own allocation; the others skip the wrapping
        # of every output that get_outputs would do on each token.
        outputs = self.io.get_outputs()[self.n_fixed :] if self.summary_names else []
        return self.logits.copy(), self.beat_out.copy(), self.new, [value.numpy() for value in outputs]

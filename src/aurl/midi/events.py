"""The byte loop over one MTrk chunk: channel events into a flat int list, a few meta events aside.

This is the reader's hot path, so it is one plain loop over a `bytes` object with local variables
only. It keeps what the Score needs and skips the rest by length: note on/off, controllers (for the
sustain pedal) and program changes go into `out` as flat (tick, status, position) triples; tempo,
time signature, key signature and names go into `metas`; sysex, lyrics, markers, pitch bend and
aftertouch are stepped over. Everything odd is counted on the `TrackScan`, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Meta event types the Score uses: track name, instrument name, tempo, time and key signature.
META_TRACK_NAME = 0x03
META_INSTRUMENT = 0x04
META_END_OF_TRACK = 0x2F
META_TEMPO = 0x51
META_TIME_SIGNATURE = 0x58
META_KEY_SIGNATURE = 0x59
KEPT_METAS = frozenset(
    {META_TRACK_NAME, META_INSTRUMENT, META_TEMPO, META_TIME_SIGNATURE, META_KEY_SIGNATURE}
)
# Data bytes after a system common/real-time status (F1..FE except F7): these do not belong in a file,
# but where they appear, their spec length keeps the parse in step (F4, F5, F9, FD are undefined: 0).
SYSTEM_DATA_LENGTH = {0xF1: 1, 0xF2: 2, 0xF3: 1}
MAX_KEPT_METAS = 200_000  # per file: bounds memory on a file of millions of tempo events
SEGMENT_BYTES = 1 << 18  # the loop hands control back this often so the caller can bound memory


@dataclass
class TrackScan:
    """The state of the byte loop over one track chunk, resumable segment by segment.

    Attributes:
        data: the chunk's bytes (events only, without the 8-byte chunk header).
        pos: next byte to read.
        tick: absolute time of the last event read, in ticks.
        status: the running status (0 when none has been seen yet).
        metas: (tick, meta type, payload) of the kept meta events, in file order.
        done: True once the loop stopped for good (end of data, end-of-track, or corrupt data).
        eot: an end-of-track meta event was read; `pos` is just after it.
        cut: the data ended inside an event (a truncated chunk).
        bad_delta: a delta time longer than 4 bytes stopped the loop.
        orphan_data_bytes: data bytes skipped because no running status was known.
        system_messages: system common/real-time messages (F1..FE) stepped over.
        metas_dropped: kept-type meta events beyond `meta_budget`, ignored.
        meta_budget: how many meta events this track may still keep (the file's MAX_KEPT_METAS).
    """

    data: bytes
    meta_budget: int = MAX_KEPT_METAS
    pos: int = 0
    tick: int = 0
    status: int = 0
    metas: list[tuple[int, int, bytes]] = field(default_factory=list)
    done: bool = False
    eot: bool = False
    cut: bool = False
    bad_delta: bool = False
    orphan_data_bytes: int = 0
    system_messages: int = 0
    metas_dropped: int = 0

    def run(self, out: list[int]) -> None:
        """Read on for about SEGMENT_BYTES bytes, appending (tick, status, position) triples to `out`.

        Positions index the first data byte of the event in `data`. Sets `done` when the track ends.
        """
        mark = len(out)
        self._loop(out, min(len(self.data), self.pos + SEGMENT_BYTES))
        if self.pos > len(self.data):
            self.done = self.cut = True
        if self.cut and len(out) > mark:
            _drop_partial_event(out, len(self.data))

    def _loop(self, out: list[int], stop: int) -> None:
        d = self.data
        add = out.extend
        i, tick, status = self.pos, self.tick, self.status
        try:
            while i < stop:
                b = d[i]
                i += 1
                if b < 0x80:
                    tick += b
                else:
                    # A delta of 2..4 bytes, unrolled: a loop here would cost more than the whole event.
                    v = b & 0x7F
                    b = d[i]
                    i += 1
                    v = (v << 7) | (b & 0x7F)
                    if b >= 0x80:
                        b = d[i]
                        i += 1
                        v = (v << 7) | (b & 0x7F)
                        if b >= 0x80:
                            b = d[i]
                            i += 1
                            v = (v << 7) | (b & 0x7F)
                            if b >= 0x80:
                                self.bad_delta = self.done = True
                                break
                    tick += v
                s = d[i]
                if s >= 0x80 or not status:
                    if s < 0x80:
                        i = self._skip_orphan_data(i)
                        s = d[i]
                    i += 1
                    if s >= 0xF0:
                        i = self._system(s, i, tick)
                        if self.done:
                            break
                        continue
                    status = s
                else:
                    s = status
                if s < 0xC0:
                    add((tick, s, i))
                    i += 2
                elif s < 0xD0:
                    add((tick, s, i))
                    i += 1
                elif s < 0xE0:
                    i += 1
                else:
                    i += 2
            else:
                self.done = i >= len(d)
        except IndexError:
            self.done = self.cut = True
        self.pos, self.tick, self.status = i, tick, status

    def _skip_orphan_data(self, i: int) -> int:
        """Data bytes where no running status is known: skip them; returns the next status byte's position."""
        d = self.data
        start = i
        while d[i] < 0x80:
            i += 1
        self.orphan_data_bytes += i - start
        return i

    def _system(self, s: int, i: int, tick: int) -> int:
        """Meta, sysex or system message `s` with data from `i` on; returns the position after it."""
        d = self.data
        if s == 0xFF:
            kind = d[i]
            length, i = _read_length(d, i + 1)
            if kind == META_END_OF_TRACK:
                self.eot = self.done = True
                return i + length
            if kind in KEPT_METAS:
                if len(self.metas) < self.meta_budget:
                    self.metas.append((tick, kind, d[i : i + length]))
                else:
                    self.metas_dropped += 1
            return i + length
        if s == 0xF0 or s == 0xF7:
            length, i = _read_length(d, i)
            return i + length
        self.system_messages += 1
        return i + SYSTEM_DATA_LENGTH.get(s, 0)


def _read_length(d: bytes, i: int) -> tuple[int, int]:
    """A variable-length quantity of at most 4 bytes at `i`; returns (value, next position).

    A longer run of continuation bytes is corrupt data: the value is taken as the remaining length of
    the data, which ends the track there instead of growing an unbounded integer.
    """
    value = 0
    for _ in range(4):
        b = d[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, i
    return len(d), i


def _drop_partial_event(out: list[int], n: int) -> None:
    """Remove the last stored event when its data bytes run past the end `n` of the chunk."""
    status, position = out[-2], out[-1]
    size = 1 if 0xC0 <= status < 0xD0 else 2
    if position + size > n:
        del out[-3:]

"""Read a Standard MIDI File (type 0, 1, 2; .mid .midi .kar, RIFF .rmi) into a Score, repairing what it can.

The reader is ours, byte level and tolerant: one loop per track chunk (events.py) collects channel
events as flat integers, numpy pairs notes (repair.py), and every deviation from the standard that
could be repaired is written on `Score.repairs`. Whatever cannot be read raises
`MidiError("<file>: <reason>")`, and nothing else ever escapes: no IndexError, no hang, and memory
and time stay bounded on hostile files.

Choices where the standard gives no answer:
- Division 0 ticks per beat: 480 is assumed and recorded as a repair.
- SMPTE division (frames per second x ticks per frame): converted to ticks per beat at 120 bpm, so
  that one second is two beats; tempo events are then ignored. Other frame rates than 24, 25, 29.97
  and 30, or 0 ticks per frame, are rejected.
- A header announcing 0 tracks with no track chunk: a valid, empty Score (not an error). A header
  announcing tracks of which none is found: rejected.
- Tracks are numbered from 0 in the order of the MTrk chunks in the file in repair messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from aurl.errors import MidiError
from aurl.midi.events import MAX_KEPT_METAS, TrackScan
from aurl.midi.repair import RawMidi, Unreadable, build_score
from aurl.midi.score import Score

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_EVENTS = 1 << 22  # channel events kept per file: bounds memory on hostile files (~100 MB at most)
MAX_TRACK_CHUNKS = 0xFFFF  # the most a MIDI header can announce
ASSUMED_TICKS_PER_BEAT = 480
HEADER_SEARCH_BYTES = (
    4096  # how far into a file a misplaced MThd is looked for (e.g. after a MacBinary header)
)
SMPTE_FPS = {24: (24, 24.0), 25: (25, 25.0), 29: (30, 29.97), 30: (30, 30.0)}  # byte: (nominal, real)
_FLUSH_ITEMS = 3 << 17  # convert the event list to numpy this often, so Python ints stay few


def read_midi(path: str | os.PathLike[str], *, sustain_pedal: bool = False) -> Score:
    """Read a MIDI file into a Score.

    Args:
        path: a .mid, .midi, .kar or RIFF-wrapped .rmi file.
        sustain_pedal: when True, notes released while the sustain pedal (CC64 >= 64) is down on
            their channel last until the pedal is released or the same pitch starts again,
            whichever comes first. Default False: notes keep their written durations.

    Returns:
        The Score, with every repair the reader made listed in `repairs`.

    Raises:
        MidiError: the file cannot be opened or is not a readable MIDI file; the message starts
            with the path and gives the reason.
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise MidiError(
                    f"{name}: file is {size} bytes, over the {MAX_FILE_BYTES} byte limit for a MIDI file; "
                    "is it really MIDI?"
                )
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise MidiError(f"{name}: cannot read the file ({error.strerror or error})") from None
    return read_midi_bytes(data, name, sustain_pedal=sustain_pedal)


def read_midi_bytes(data: bytes, name: str = "<bytes>", *, sustain_pedal: bool = False) -> Score:
    """Read MIDI file contents into a Score; `name` only labels error messages.

    Same behaviour and errors as `read_midi`.
    """
    try:
        return _read(bytes(data), sustain_pedal)
    except Unreadable as reason:
        raise MidiError(f"{name}: {reason}") from None
    except MidiError:
        raise
    except Exception as error:  # noqa: BLE001 - the contract: only MidiError leaves the reader (MemoryError too)
        raise MidiError(f"{name}: unreadable MIDI data ({type(error).__name__}: {error})") from error


@dataclass
class _Header:
    format: int
    n_tracks: int
    ticks_per_beat: int
    tick_scale: int = 1  # SMPTE time bases with an odd tick rate are read with ticks doubled
    smpte_bpm: float | None = None
    end: int = 14


def _read(data: bytes, sustain_pedal: bool) -> Score:
    if len(data) > MAX_FILE_BYTES:
        raise Unreadable(f"{len(data)} bytes, over the {MAX_FILE_BYTES} byte limit for a MIDI file")
    repairs: list[str] = []
    smf = _unwrap(data, repairs)
    header = _parse_header(smf, repairs)
    raw = _read_tracks(smf, header, repairs)
    return build_score(raw, sustain_pedal=sustain_pedal)


def _unwrap(data: bytes, repairs: list[str]) -> bytes:
    """The Standard MIDI File inside `data`: RIFF RMID unwrapped, junk before MThd skipped."""
    if not data:
        raise Unreadable("empty file (0 bytes)")
    if data[:4] == b"RIFF":
        data = _riff_payload(data)
    start = data.find(b"MThd", 0, HEADER_SEARCH_BYTES)
    if start < 0:
        raise Unreadable(f"not a MIDI file: no MThd header (the file starts with {data[:8]!r})")
    if start > 0:
        repairs.append(f"skipped {start} bytes before the MThd header")
    return data[start:]


def _riff_payload(data: bytes) -> bytes:
    """The 'data' chunk of a RIFF RMID file (.rmi)."""
    if data[8:12] != b"RMID":
        raise Unreadable(f"RIFF file of form {data[8:12]!r}, not RMID: not a MIDI file")
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"data":
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)  # RIFF chunks are padded to an even length
    raise Unreadable("RIFF RMID file without a 'data' chunk")


def _parse_header(smf: bytes, repairs: list[str]) -> _Header:
    if len(smf) < 14:
        raise Unreadable(f"truncated header: {len(smf)} bytes where a MIDI header needs 14")
    length = int.from_bytes(smf[4:8], "big")
    if length < 6:
        raise Unreadable(f"MThd header length is {length}, expected 6")
    end = 8 + length
    if length > 6 and (length > 64 or end > len(smf)):
        repairs.append(f"MThd header length {length} is implausible; read as 6")
        end = 14
    fmt, n_tracks, division = (int.from_bytes(smf[k : k + 2], "big") for k in (8, 10, 12))
    if fmt > 2:
        repairs.append(f"unknown MIDI format {fmt}; read as type 1")
        fmt = 1
    header = _division(division, repairs)
    header.format, header.n_tracks, header.end = fmt, n_tracks, end
    return header


def _division(division: int, repairs: list[str]) -> _Header:
    """Ticks per beat from the header's division word (metrical, SMPTE, or 0)."""
    if division == 0:
        repairs.append(f"division is 0 ticks per beat; assumed {ASSUMED_TICKS_PER_BEAT}")
        return _Header(0, 0, ASSUMED_TICKS_PER_BEAT)
    if not division & 0x8000:
        return _Header(0, 0, division)
    fps_byte, ticks_per_frame = 256 - (division >> 8), division & 0xFF
    if fps_byte not in SMPTE_FPS or ticks_per_frame == 0:
        raise Unreadable(
            f"SMPTE division 0x{division:04X} ({fps_byte} frames per second x {ticks_per_frame} ticks "
            "per frame) is not a valid time base; expected 24, 25, 29 or 30 fps and >= 1 tick per frame"
        )
    nominal, real = SMPTE_FPS[fps_byte]
    ticks_per_second = nominal * ticks_per_frame
    scale = 1 if ticks_per_second % 2 == 0 else 2
    tpq = ticks_per_second * scale // 2
    bpm = 120.0 * real / nominal
    repairs.append(
        f"SMPTE time base ({fps_byte} fps x {ticks_per_frame} ticks per frame) converted to {tpq} ticks "
        f"per beat at {bpm:g} bpm; tempo events ignored"
    )
    return _Header(0, 0, tpq, tick_scale=scale, smpte_bpm=bpm)


@dataclass
class _Tracks:
    """What the chunk walk collects, before numpy takes over."""

    out: list[int] = field(default_factory=list)
    parts: list[np.ndarray] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    bases: list[int] = field(default_factory=list)
    scans: list[TrackScan] = field(default_factory=list)
    n_events: int = 0  # events moved from `out` into `parts`
    n_metas: int = 0  # meta events kept by the scans so far

    def flush(self) -> None:
        if self.out:
            self.parts.append(np.array(self.out, np.int64))
            self.n_events += len(self.out) // 3
            self.out = []

    def mark(self) -> tuple[int, int, int]:
        return len(self.out), len(self.parts), self.n_events

    def rewind(self, mark: tuple[int, int, int]) -> None:
        """Forget the events collected since `mark` was taken."""
        items, n_parts, n_events = mark
        if len(self.parts) == n_parts:
            del self.out[items:]
            return
        # A flush since the mark moved the older items into the first new part: keep just those.
        kept = self.parts[n_parts][:items]
        del self.parts[n_parts:]
        self.parts.append(kept)
        self.out = []
        self.n_events = n_events + items // 3

    def events(self) -> np.ndarray:
        self.flush()
        flat = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int64)
        return flat.reshape(-1, 3)


def _read_tracks(smf: bytes, header: _Header, repairs: list[str]) -> RawMidi:
    """Walk the chunks after the header, scanning each MTrk; returns the raw columns for repair.py."""
    tracks = _Tracks()
    pos, n = header.end, len(smf)
    while pos + 8 <= n and len(tracks.scans) < MAX_TRACK_CHUNKS:
        chunk_id = smf[pos : pos + 4]
        length = int.from_bytes(smf[pos + 4 : pos + 8], "big")
        if chunk_id == b"MTrk":
            pos = _read_track(smf, pos, length, tracks, repairs)
            if tracks.n_events >= MAX_EVENTS:
                repairs.append(
                    f"stopped after {tracks.n_events} channel events; the rest of the file is ignored"
                )
                break
        elif _is_chunk_id(chunk_id):
            repairs.append(f"skipped a {chunk_id.decode('ascii')!r} chunk of {length} bytes")
            pos += 8 + length
        else:
            found = smf.find(b"MTrk", pos + 1)
            skipped = (found if found >= 0 else n) - pos
            repairs.append(f"skipped {skipped} bytes of garbage between chunks at byte {pos}")
            pos = found if found >= 0 else n
    if 0 < n - pos < 8:
        repairs.append(f"ignored {n - pos} stray bytes at the end of the file")
    n_found = len(tracks.scans)
    if n_found != header.n_tracks:
        if n_found == 0:
            raise Unreadable(f"no MTrk track chunk found, though the header announces {header.n_tracks}")
        repairs.append(f"the header announces {header.n_tracks} tracks; the file holds {n_found}")
    return _raw(smf, header, tracks, repairs)


def _read_track(smf: bytes, pos: int, length: int, tracks: _Tracks, repairs: list[str]) -> int:
    """Scan the MTrk chunk at `pos`; returns where the next chunk starts."""
    index, start, n = len(tracks.scans), pos + 8, len(smf)
    declared_end = start + length
    mark = tracks.mark()
    scan = _scan(smf[start : min(declared_end, n)], tracks)
    next_pos = -1
    if not scan.eot and declared_end < n and not _chunk_at(smf, declared_end):
        # Maybe the chunk length is too short: read on to the next track chunk, and keep that reading
        # only if it finds the end-of-track event there (else the bytes after the chunk are garbage).
        found = smf.find(b"MTrk", declared_end)
        limit = found if found >= 0 else n
        tracks.rewind(mark)
        longer = _scan(smf[start:limit], tracks)
        if longer.eot:
            scan, next_pos = longer, limit
            repairs.append(f"track {index}: chunk length {length} is too short; read on to byte {limit}")
        else:
            tracks.rewind(mark)
            scan = _scan(smf[start:declared_end], tracks)
    if next_pos < 0:
        next_pos = _next_chunk(smf, start, declared_end, scan, f"track {index}:", repairs)
    if declared_end > n and next_pos == n:
        repairs.append(
            f"track {index}: chunk length {length} runs {declared_end - n} bytes past the end of the file"
        )
    tracks.scans.append(scan)
    tracks.n_metas += len(scan.metas)
    tracks.bases.append(start)
    tracks.counts.append((len(tracks.out) - mark[0]) // 3 + tracks.n_events - mark[2])
    _note_scan_repairs(f"track {index}:", scan, repairs)
    return next_pos


def _scan(chunk: bytes, tracks: _Tracks) -> TrackScan:
    scan = TrackScan(chunk, meta_budget=MAX_KEPT_METAS - tracks.n_metas)
    while not scan.done:
        scan.run(tracks.out)
        if len(tracks.out) >= _FLUSH_ITEMS:
            tracks.flush()
            if tracks.n_events >= MAX_EVENTS:
                break
    return scan


def _next_chunk(
    smf: bytes, start: int, declared_end: int, scan: TrackScan, where: str, repairs: list[str]
) -> int:
    """Where the chunk after a track starts, also when its declared length does not point at one."""
    n = len(smf)
    if declared_end == n or _chunk_at(smf, declared_end):
        return declared_end
    resume = start + scan.pos if scan.eot else declared_end
    if scan.eot and _chunk_at(smf, resume):
        repairs.append(f"{where} chunk length is wrong; the next chunk follows its end-of-track")
        return resume
    if declared_end > n:
        return n
    found = smf.find(b"MTrk", resume)
    if found < 0:
        repairs.append(f"{where} ignored the last {n - resume} bytes of the file, after the track")
        return n
    repairs.append(f"{where} skipped {found - resume} bytes of garbage after the track")
    return found


def _note_scan_repairs(where: str, scan: TrackScan, repairs: list[str]) -> None:
    """Turn the counters of a finished scan into repair lines."""
    if scan.cut:
        repairs.append(f"{where} truncated inside an event; kept the events before the cut")
    elif scan.bad_delta:
        repairs.append(f"{where} a delta time longer than 4 bytes; the rest of the track is dropped")
    elif not scan.eot and scan.done:
        repairs.append(f"{where} no end-of-track event")
    if scan.orphan_data_bytes:
        repairs.append(f"{where} skipped {scan.orphan_data_bytes} data bytes with no status byte before them")
    if scan.system_messages:
        repairs.append(f"{where} skipped {scan.system_messages} system messages that do not belong in a file")
    if scan.metas_dropped:
        repairs.append(f"{where} ignored {scan.metas_dropped} meta events past the limit of kept ones")


def _is_chunk_id(chunk_id: bytes) -> bool:
    return len(chunk_id) == 4 and all(0x20 < b < 0x7F for b in chunk_id)


def _chunk_at(smf: bytes, pos: int) -> bool:
    return pos + 8 <= len(smf) and _is_chunk_id(smf[pos : pos + 4])


def _raw(smf: bytes, header: _Header, tracks: _Tracks, repairs: list[str]) -> RawMidi:
    """Gather the scanned tracks into the numpy columns repair.py works on."""
    events = tracks.events()
    counts = np.asarray(tracks.counts, np.int64)
    track = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    position = events[:, 2] + np.repeat(np.asarray(tracks.bases, np.int64), counts)
    buffer = np.frombuffer(smf, np.uint8)
    status = events[:, 1]
    data1 = buffer[position]
    two_bytes = status < 0xC0
    data2 = np.where(two_bytes, buffer[np.minimum(position + 1, len(buffer) - 1)], 0)
    clipped = int(np.count_nonzero(data1 > 127) + np.count_nonzero(data2 > 127))
    if clipped:
        repairs.append(f"{clipped} data bytes above 127 in channel messages clipped to 127")
    scale = header.tick_scale
    return RawMidi(
        ticks_per_beat=header.ticks_per_beat,
        format=header.format,
        tick=events[:, 0] * scale,
        status=status,
        data1=np.minimum(data1, 127),
        data2=np.minimum(data2, 127),
        track=track,
        track_end=np.asarray([scan.tick * scale for scan in tracks.scans], np.int64),
        metas=[
            [(tick * scale, kind, payload) for tick, kind, payload in scan.metas] for scan in tracks.scans
        ],
        fixed_bpm=header.smpte_bpm,
        repairs=repairs,
    )

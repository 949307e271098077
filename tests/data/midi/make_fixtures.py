"""Build the hand-made MIDI fixtures in this folder, byte by byte (README.md describes each file).

Run `python tests/data/midi/make_fixtures.py` from the repository root to rewrite them; the output is
deterministic, and tests/midi/test_fixtures.py checks that the committed files match it. The bytes are
assembled here directly, not with aurl's writer, so the reader is tested against independent input.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def header(fmt: int, n_tracks: int, division: int, length: int = 6) -> bytes:
    body = fmt.to_bytes(2, "big") + n_tracks.to_bytes(2, "big") + division.to_bytes(2, "big")
    return b"MThd" + length.to_bytes(4, "big") + body


def chunk(body: bytes, kind: bytes = b"MTrk", length: int | None = None) -> bytes:
    return kind + (len(body) if length is None else length).to_bytes(4, "big") + body


def events(*items: tuple[int, bytes]) -> bytes:
    """Track body from (delta, event bytes) pairs."""
    return b"".join(vlq(delta) + event for delta, event in items)


def meta(kind: int, payload: bytes) -> bytes:
    return bytes((0xFF, kind)) + vlq(len(payload)) + payload


EOT = meta(0x2F, b"")


def on(channel: int, pitch: int, velocity: int = 100) -> bytes:
    return bytes((0x90 | channel, pitch, velocity))


def off(channel: int, pitch: int) -> bytes:
    return bytes((0x80 | channel, pitch, 64))


def tempo(bpm: float) -> bytes:
    return meta(0x51, round(60_000_000 / bpm).to_bytes(3, "big"))


def name(text: str) -> bytes:
    return meta(0x03, text.encode("utf-8"))


def scale_track(
    channel: int = 0, pitches: tuple[int, ...] = (60, 62, 64, 65, 67, 69, 71, 72), step: int = 96
) -> bytes:
    items: list[tuple[int, bytes]] = []
    for pitch in pitches:
        items += [(0, on(channel, pitch)), (step, off(channel, pitch))]
    return events(*items, (0, EOT))


def smf(fmt: int, division: int, *bodies: bytes) -> bytes:
    return header(fmt, len(bodies), division) + b"".join(chunk(b) for b in bodies)


def conductor(*items: tuple[int, bytes]) -> bytes:
    return events(*items, (0, EOT))


def single_track() -> dict[str, bytes]:
    scale = (
        events(
            (0, name("Scale")),
            (0, tempo(120)),
            (0, meta(0x58, bytes((4, 2, 24, 8)))),
            (0, meta(0x59, bytes((0, 0)))),
        )
        + scale_track()
    )
    running = events(
        (0, bytes((0x90, 60, 100))),
        (96, bytes((60, 0))),  # running status, velocity-0 note-on as note-off
        (0, bytes((62, 100))),
        (96, bytes((62, 0))),
        (0, bytes((64, 100))),
        (96, bytes((64, 0))),
        (0, EOT),
    )
    pedal = events(
        (0, bytes((0xB0, 64, 127))),  # pedal down
        (0, on(0, 60)),
        (96, off(0, 60)),  # released under the pedal: held to 384
        (0, on(0, 64)),
        (96, off(0, 64)),  # held too, to 384
        (96, on(0, 60)),  # 60 again at 288: the first 60 ends here instead
        (48, off(0, 60)),
        (48, bytes((0xB0, 64, 0))),  # pedal up at 384
        (0, on(0, 67)),
        (96, off(0, 67)),  # after the pedal: unchanged
        (0, EOT),
    )
    karaoke = smf(
        1,
        96,
        conductor((0, meta(0x01, b"@KMIDI KARAOKE FILE")), (0, tempo(100))),
        events((0, meta(0x01, b"@LENGL")), (0, meta(0x05, b"Hel")), (0, meta(0x05, b"lo")), (0, EOT)),
        events((0, name("Melody")), (0, bytes((0xC0, 73))), (0, meta(0x05, b"la"))) + scale_track(),
    )
    smpte = header(0, 1, 0xE728) + chunk(scale_track(step=40))  # 25 fps x 40 ticks per frame
    rmi_payload = smf(0, 96, scale_track())
    riff_body = b"RMID" + b"data" + len(rmi_payload).to_bytes(4, "little") + rmi_payload
    rmi = b"RIFF" + len(riff_body).to_bytes(4, "little") + riff_body
    unicode_name = smf(1, 480, events((0, name("Mélodie 旋律"))) + scale_track(step=480))
    return {
        "c_major_scale.mid": smf(0, 96, scale),
        "running_status.mid": smf(0, 96, running),
        "sustain_pedal.mid": smf(0, 96, pedal),
        "karaoke.kar": karaoke,
        "smpte_25fps.mid": smpte,
        "wrapped.rmi": rmi,
        "mélodie_旋律.mid": unicode_name,
    }


def multitrack() -> dict[str, bytes]:
    # Four voices on one channel; alto and tenor sound pitch 60 at once with different lengths.
    satb = smf(
        1,
        480,
        conductor((0, tempo(90)), (0, meta(0x58, bytes((3, 2, 24, 8)))), (0, meta(0x59, bytes((0xFE, 1))))),
        events((0, name("Soprano")), (0, on(0, 67)), (960, off(0, 67)), (0, EOT)),
        events((0, name("Alto")), (0, on(0, 60)), (480, off(0, 60)), (480, EOT)),
        events((0, name("Tenor")), (0, on(0, 60)), (960, off(0, 60)), (0, EOT)),
        events((0, name("Bass")), (0, on(0, 48)), (960, off(0, 48)), (0, EOT)),
    )
    type0 = smf(
        0,
        96,
        events(
            (0, name("Band")),
            (0, bytes((0xC0, 0))),
            (0, bytes((0xC1, 33))),
            (0, on(0, 72)),
            (0, on(1, 40)),
            (0, on(9, 36)),
            (48, off(9, 36)),
            (48, off(0, 72)),
            (0, off(1, 40)),
            (0, EOT),
        ),
    )
    type2 = smf(
        2,
        96,
        events((0, name("First")), (0, on(0, 60)), (96, off(0, 60)), (96, EOT)),  # 192 ticks long
        events((0, name("Second")), (0, tempo(60)), (0, on(0, 64)), (96, off(0, 64)), (0, EOT)),
    )
    maps = smf(
        1,
        96,
        conductor(
            (0, tempo(120)),
            (0, meta(0x58, bytes((4, 2, 24, 8)))),
            (0, meta(0x59, bytes((0xFD, 1)))),  # 3 flats, minor
            (384, tempo(90)),
            (0, meta(0x58, bytes((3, 2, 24, 8)))),
            (288, meta(0x58, bytes((6, 3, 24, 8)))),
            (0, meta(0x59, bytes((2, 0)))),  # 2 sharps, major
        ),
        # A second track repeats a tempo at 384: the later track wins at that tick.
        events((384, tempo(100)), (0, on(0, 60)), (96, off(0, 60)), (0, EOT)),
    )
    return {
        "satb_one_channel.mid": satb,
        "type0_multichannel.mid": type0,
        "type2_sequence.mid": type2,
        "tempo_and_signatures.mid": maps,
    }


def edge_cases() -> dict[str, bytes]:
    return {
        "header_only.mid": header(1, 0, 480),
        "no_notes.mid": smf(1, 480, conductor((0, tempo(120)), (0, meta(0x01, b"silence")))),
        "division_zero.mid": smf(0, 0, scale_track()),
        "unclosed_notes.mid": smf(0, 96, events((0, on(0, 60)), (0, on(0, 64)), (96, off(0, 64)), (96, EOT))),
        "orphan_note_offs.mid": smf(
            0, 96, events((0, off(0, 60)), (0, on(0, 62)), (96, off(0, 62)), (0, off(0, 62)), (0, EOT))
        ),
        "overlapping_same_pitch.mid": smf(
            0, 96, events((0, on(0, 60)), (48, on(0, 60)), (48, off(0, 60)), (48, off(0, 60)), (0, EOT))
        ),
        "zero_length_notes.mid": smf(
            0, 96, events((0, on(9, 42)), (0, off(9, 42)), (96, on(9, 42)), (0, off(9, 42)), (0, EOT))
        ),
        "off_on_same_tick.mid": smf(
            0, 96, events((0, on(0, 60)), (96, on(0, 60)), (0, off(0, 60)), (96, off(0, 60)), (0, EOT))
        ),
        "tempo_extremes.mid": smf(
            1,
            96,
            conductor((0, meta(0x51, b"\x00\x00\x00")), (96, meta(0x51, b"\x00\x00\x01"))),
            scale_track(),
        ),
        "huge_delta.mid": smf(
            0,
            96,
            events((0, on(0, 60)), (96, off(0, 60)), (0x0FFFFFFF, on(0, 62)), (96, off(0, 62)), (0, EOT)),
        ),
        "unknown_chunk.mid": header(0, 1, 96) + chunk(b"vendor data", kind=b"XFIH") + chunk(scale_track()),
        "leading_junk.mid": bytes(128) + smf(0, 96, scale_track()),
        "many_meta_and_sysex.mid": smf(
            0,
            96,
            events(
                (0, bytes((0xF0, 5, 0x7E, 0x7F, 0x09, 0x01, 0xF7))),
                (0, meta(0x06, b"marker")),
                (0, meta(0x7F, b"\x00\x00\x41sequencer")),
                (0, bytes((0xE0, 0, 64))),  # pitch bend
                (0, bytes((0xB0, 7, 100))),  # volume
                (0, bytes((0xD0, 90))),  # channel pressure
                (0, bytes((0xA0, 60, 30))),  # polyphonic aftertouch
                (0, meta(0x21, b"\x00")),  # MIDI port
            )
            + scale_track(),
        ),
    }


def corrupted() -> dict[str, bytes]:
    scale = scale_track()
    good = smf(0, 96, scale)
    return {
        "empty.mid": b"",
        "not_midi.mid": b"this is a text file, not MIDI\n",
        "truncated_header.mid": good[:10],
        "bad_header_length.mid": header(0, 1, 96, length=2) + chunk(scale),
        "truncated_track.mid": good[: 14 + 8 + 21],  # cut inside the 3rd note-off
        "chunk_length_too_long.mid": header(1, 2, 96)
        + chunk(scale, length=len(scale) + 50)
        + chunk(scale_track(pitches=(48,))),
        "chunk_length_too_short.mid": header(1, 2, 96)
        + chunk(scale, length=len(scale) - 10)
        + chunk(scale_track(pitches=(48,))),
        "missing_end_of_track.mid": smf(0, 96, scale[:-4]),
        "running_status_without_status.mid": smf(0, 96, b"\x00\x3c\x64\x20" + scale),
        "data_byte_over_127.mid": smf(
            0, 96, events((0, bytes((0xB0, 7, 168))), (0, bytes((0x90, 60, 200))), (96, off(0, 60)), (0, EOT))
        ),
        "smpte_invalid.mid": header(0, 1, 0xFF28) + chunk(scale),
        "garbage_between_chunks.mid": header(1, 2, 96)
        + chunk(scale)
        + b"\x01\x02\x03garbage"
        + chunk(scale_track(pitches=(48,))),
        "undefined_status.mid": smf(0, 96, events((0, b"\xf4"), (0, b"\xf9")) + scale),
        "bad_delta.mid": smf(
            0,
            96,
            events((0, on(0, 60)), (96, off(0, 60))) + b"\xff\xff\xff\xff\x7f\x90\x3e\x64" + events((0, EOT)),
        ),
        "tracks_announced_missing.mid": header(1, 3, 96),
    }


FOLDERS = {
    "single_track": single_track,
    "multitrack": multitrack,
    "edge_cases": edge_cases,
    "corrupted": corrupted,
}


def build() -> dict[str, bytes]:
    """Every fixture: relative path -> file contents."""
    return {f"{folder}/{file}": data for folder, make in FOLDERS.items() for file, data in make().items()}


def main() -> None:
    for relative, data in build().items():
        path = HERE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"wrote {len(build())} fixtures under {HERE}")


if __name__ == "__main__":
    main()

"""`sample`, the library entry point: files, metadata, reproducibility, tasks and bad inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from aurl import __version__
from aurl.config import load_settings
from aurl.config.sample import RECOMMENDED_KEY
from aurl.errors import CheckpointError, ConfigError, MidiError, UsageError
from aurl.midi import read_midi, write_midi
from aurl.models import MusicTransformerVAEGAN, save_weights
from aurl.models import bundled as bundled_module
from aurl.sample import sample
from aurl.sample.checkpoint import file_sha256
from aurl.tokens import VOCAB_VERSION, decode, encode, vocab
from sample.builders import excerpt, piece_paths, save


def settings(**sample_settings: object):  # type: ignore[no-untyped-def]
    return load_settings(None, {f"sample.{k}": v for k, v in sample_settings.items()})


def embedded_metadata(path: Path) -> dict:
    """The JSON that `sample` writes into a MIDI file's text meta event."""
    text = path.read_bytes().decode("latin-1")
    start = text.index('{"aurl_version"')
    return json.JSONDecoder().raw_decode(text[start:])[0]


def test_one_piece_with_its_metadata(weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "song.mid"
    result = sample(settings(seed=11, bars=4, key="D minor"), checkpoint=weights, out=out)
    assert [p.path for p in result.pieces] == [str(out)] and out.is_file()
    piece = result.pieces[0]
    assert piece.skipped_tokens == 0 and piece.notes > 0 and piece.bars <= 4 and piece.seconds > 0
    assert result.seed == 11 and result.mode == "transformer" and result.task == "sample"
    assert result.checkpoint_sha256 == file_sha256(weights) and result.aurl_version == __version__
    meta = embedded_metadata(out)
    assert meta["settings"]["seed"] == 11 and meta["settings"]["key"] == "D minor"
    assert meta["checkpoint_sha256"] == result.checkpoint_sha256 and meta["aurl_version"] == __version__
    assert meta["settings"] == result.settings and meta["vocab_version"] == vocab.VOCAB_VERSION
    assert read_midi(out).n_notes == piece.notes


def test_the_same_seed_writes_byte_identical_files(weights: Path, tmp_path: Path) -> None:
    files = []
    for run in ("a", "b"):
        result = sample(settings(seed=5, num=2, bars=2), checkpoint=weights, out=tmp_path / run)
        files.append([Path(p.path).read_bytes() for p in result.pieces])
    assert files[0] == files[1] and files[0][0] != files[0][1]
    other = sample(settings(seed=6, num=2, bars=2), checkpoint=weights, out=tmp_path / "c")
    assert [Path(p.path).read_bytes() for p in other.pieces] != files[0]


def test_without_a_seed_a_fresh_one_is_drawn_and_reported(weights: Path, tmp_path: Path) -> None:
    first = sample(settings(bars=1), checkpoint=weights, out=tmp_path / "a.mid")
    sample(settings(bars=1, seed=first.seed), checkpoint=weights, out=tmp_path / "b.mid")
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()


def test_several_pieces_go_into_a_folder(weights: Path, tmp_path: Path) -> None:
    result = sample(settings(seed=1, bars=1), checkpoint=weights, out=tmp_path / "songs", num=3)
    names = [Path(p.path).name for p in result.pieces]
    assert names == ["song-000.mid", "song-001.mid", "song-002.mid"]
    assert [embedded_metadata(Path(p.path))["piece"] for p in result.pieces] == [0, 1, 2]
    with pytest.raises(ConfigError, match="names one file"):
        sample(settings(seed=1), checkpoint=weights, out=tmp_path / "one.mid", num=2)


def test_a_run_folder_is_a_checkpoint(weights: Path, tmp_path: Path) -> None:
    result = sample(settings(seed=1, bars=1), checkpoint=weights.parent, out=tmp_path / "x.mid")
    assert result.checkpoint == str(weights)


def test_a_primer_is_continued(weights: Path, pieces: list[np.ndarray], tmp_path: Path) -> None:
    primer = tmp_path / "primer.mid"
    primer_ids = excerpt(pieces[0], 2)
    write_midi(decode(primer_ids), primer)
    result = sample(settings(seed=2, bars=2), checkpoint=weights, out=tmp_path / "more.mid", primer=primer)
    assert result.task == "continue"
    ids = encode(read_midi(tmp_path / "more.mid"))
    assert np.array_equal(ids[: len(primer_ids) - 1], primer_ids[:-1])  # all but the primer's EOS
    assert result.pieces[0].new_tokens > 0


def test_beam_search_through_sample(weights: Path, tmp_path: Path) -> None:
    result = sample(settings(beam=3, num=2, bars=1), checkpoint=weights, out=tmp_path / "beams")
    assert len(result.pieces) == 2 and result.pieces[0].log_prob / result.pieces[0].new_tokens >= (
        result.pieces[1].log_prob / result.pieces[1].new_tokens
    )
    with pytest.raises(UsageError, match="exceeds --beam"):
        sample(settings(beam=2, num=3), checkpoint=weights, out=tmp_path / "more")


def test_vae_samples_from_the_prior(vae_weights: Path, tmp_path: Path) -> None:
    result = sample(settings(seed=3, num=3, bars=2), checkpoint=vae_weights, out=tmp_path / "vae")
    assert result.mode == "vae" and all(p.skipped_tokens == 0 for p in result.pieces)
    assert len({Path(p.path).read_bytes() for p in result.pieces}) == 3


def test_interpolation_writes_one_file_per_step(vae_weights: Path, tmp_path: Path) -> None:
    a, b = (tmp_path / "a.mid", tmp_path / "b.mid")
    for path, source in zip((a, b), piece_paths(), strict=True):
        write_midi(decode(excerpt(encode(read_midi(source)).astype(np.int64), 2)), path)
    result = sample(
        settings(seed=0, steps=3, top_k=1),
        checkpoint=vae_weights,
        out=tmp_path / "path",
        interpolate_between=(a, b),
    )
    assert result.task == "interpolate"
    assert [Path(p.path).name for p in result.pieces] == ["step-000.mid", "step-001.mid", "step-002.mid"]
    assert all(p.skipped_tokens == 0 and p.bars <= 2 for p in result.pieces)
    again = sample(settings(seed=0, top_k=1), checkpoint=vae_weights, out=tmp_path / "x", reconstruct=a)
    assert again.task == "reconstruct" and again.pieces[0].notes > 0


def test_latent_tasks_need_a_vae(weights: Path, tmp_path: Path) -> None:
    midi = piece_paths()[0]
    with pytest.raises(UsageError, match="needs a vae or vae_gan model"):
        sample(settings(), checkpoint=weights, out=tmp_path / "x", interpolate_between=(midi, midi))
    with pytest.raises(UsageError, match="--reconstruct needs"):
        sample(settings(), checkpoint=weights, out=tmp_path / "x", reconstruct=midi)
    with pytest.raises(UsageError, match="exclude each other"):
        sample(settings(), checkpoint=weights, out=tmp_path / "x", reconstruct=midi, primer=midi)


def test_a_primer_that_is_not_midi(weights: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.mid"
    text.write_text("these are not notes")
    with pytest.raises(MidiError, match="not a MIDI file"):
        sample(settings(), checkpoint=weights, out=tmp_path / "x.mid", primer=text)


@pytest.mark.parametrize(
    "case", ["missing", "folder", "corrupt", "truncated", "wrong_vocab", "no_vocab", "onnx"]
)
def test_checkpoints_that_cannot_be_used(
    case: str, weights: Path, transformer: MusicTransformerVAEGAN, tmp_path: Path
) -> None:
    path = tmp_path / "model.safetensors"
    if case == "folder":
        path = tmp_path
    elif case == "corrupt":
        path.write_bytes(b"\x00" * 64)
    elif case == "truncated":
        path.write_bytes(weights.read_bytes()[:5000])
    elif case in ("wrong_vocab", "no_vocab"):
        save(transformer, path, "aurl-events-v0" if case == "wrong_vocab" else None)
    elif case == "onnx":
        path = tmp_path / "model.onnx"
        path.write_bytes(b"onnx")
    # a path with nothing there is a usage error (exit 2), like any missing input
    expected = UsageError if case == "missing" else CheckpointError
    with pytest.raises(expected) as error:
        sample(settings(), checkpoint=path, out=tmp_path / "x.mid")
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_bad_settings_fail_before_the_model_loads(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.safetensors"  # never opened: the constraint fails first
    with pytest.raises(ConfigError, match="pitch"):
        sample(settings(pitch_range="C9-C10"), checkpoint=missing, out=tmp_path / "x.mid")


def test_the_bundled_model_is_found_or_reported(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundled_module, "bundled_dir", lambda: tmp_path / "empty")
    with pytest.raises(CheckpointError, match="bundled model is missing"):
        sample(settings(), out=tmp_path / "x.mid")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / bundled_module.BUNDLED_FILE).write_bytes(weights.read_bytes())
    monkeypatch.setattr(bundled_module, "bundled_dir", lambda: shipped)
    result = sample(settings(seed=1, bars=1), out=tmp_path / "song.mid")
    assert result.checkpoint == str(shipped / bundled_module.BUNDLED_FILE)


def test_musicxml_without_music21_is_a_config_error(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "music21", None)  # what `import music21` meets when it is absent
    with pytest.raises(ConfigError, match="pip install 'aurl\\[musicxml\\]'"):
        sample(settings(format="musicxml", bars=1), checkpoint=weights, out=tmp_path / "x.musicxml")
    assert not (tmp_path / "x.musicxml").exists()


def test_musicxml_is_written_through_music21(weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("music21")
    result = sample(
        settings(format="musicxml", bars=1, seed=1), checkpoint=weights, out=tmp_path / "x.musicxml"
    )
    assert "<score-partwise" in Path(result.pieces[0].path).read_text()


def test_a_models_recommended_settings_apply_where_the_user_set_none(
    weights: Path, tmp_path: Path, transformer: MusicTransformerVAEGAN
) -> None:
    path = tmp_path / "model.safetensors"
    recommended = {"max_voice_polyphony": 1, "temperature": 0.8, "seed": 9}
    save_weights(
        transformer, path, {"vocab_version": VOCAB_VERSION, RECOMMENDED_KEY: json.dumps(recommended)}
    )
    result = sample(settings(bars=2, seed=1), checkpoint=path, out=tmp_path / "a.mid")
    assert "max polyphony per voice 1" in result.constraints
    assert result.settings["temperature"] == 0.8 and result.seed == 1  # a seed is never recommended
    mine = sample(settings(bars=2, seed=1, temperature=1.2), checkpoint=path, out=tmp_path / "b.mid")
    assert mine.settings["temperature"] == 1.2  # the user's own setting wins


def test_invalid_recommended_settings_are_one_checkpoint_error(
    transformer: MusicTransformerVAEGAN, tmp_path: Path
) -> None:
    path = tmp_path / "model.safetensors"
    save_weights(transformer, path, {"vocab_version": VOCAB_VERSION, RECOMMENDED_KEY: '{"temperature": -1}'})
    with pytest.raises(CheckpointError, match="recommends invalid sample settings") as error:
        sample(settings(bars=2, seed=1), checkpoint=path, out=tmp_path / "a.mid")
    assert "\n" not in str(error.value)

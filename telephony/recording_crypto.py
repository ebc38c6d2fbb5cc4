"""Recordings encrypted at rest: AES-256-GCM in chunks, readable up to the last chunk after a crash.

Container (``<name>.wav.enc``), all integers little-endian::

    header  = b"CCRECv1\\0" | sample_rate u32 | channels u16 | bits u16 | file_id 16 bytes   (32 bytes)
    chunk   = length u32 | nonce 12 bytes | ciphertext (length bytes, GCM tag included)

Each chunk's plaintext is interleaved 16-bit PCM (a recorder flush). The associated data of chunk
``i`` is ``header | i u64 | final u8``: a chunk cannot be moved, dropped from the middle, moved to
another file, or presented as the end. ``close`` writes an empty final chunk, so a reader tells a
complete recording from one cut short by a crash (still readable up to its last whole chunk).
The key is 32 bytes (``RecordingSettings``); nonces are random per chunk (one per second of call).
"""

from __future__ import annotations

import io
import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"CCRECv1\0"
SUFFIX = ".enc"
_HEADER = struct.Struct("<8sIHH16s")
_CHUNK = struct.Struct("<I12s")
_AAD_TAIL = struct.Struct("<QB")
KEY_BYTES = 32


class RecordingDecryptError(ValueError):
    """The file is not an encrypted recording, the key is wrong, or a chunk was tampered with."""


def is_encrypted(path: Path) -> bool:
    """True when ``path`` starts with the container's magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def open_private(path: Path) -> io.BufferedWriter:
    """Create (truncate) ``path`` for writing, owner-only (0600 whatever the umask); a missing
    folder is made 0700 (an existing one is left alone: it may be the user's own)."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    return os.fdopen(fd, "wb")


def private_dir(directory: Path) -> None:
    """Make ``directory`` (and parents) and leave it owner-only."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


class EncryptedWav:
    """The ``IncrementalWav`` interface, writing the encrypted container instead of a WAV."""

    def __init__(self, path: Path, *, sample_rate: int, channels: int, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a recording key is 32 bytes")
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self._aead = AESGCM(key)
        self._header = _HEADER.pack(MAGIC, sample_rate, channels, 16, os.urandom(16))
        self._index = 0
        self._data_bytes = 0
        self._fh = open_private(self.path)
        self._fh.write(self._header)
        self._fh.flush()

    def _chunk(self, plain: bytes, *, final: bool) -> None:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain, self._header + _AAD_TAIL.pack(self._index, final))
        self._fh.write(_CHUNK.pack(len(sealed), nonce) + sealed)
        self._fh.flush()
        self._index += 1

    def write(self, interleaved: np.ndarray) -> None:
        """Append int16 samples as one authenticated chunk."""
        if self._fh.closed:
            return
        data = np.ascontiguousarray(interleaved, dtype="<i2").tobytes()
        self._chunk(data, final=False)
        self._data_bytes += len(data)

    @property
    def seconds(self) -> float:
        return self._data_bytes / (2 * self.channels * self.sample_rate)

    def close(self) -> None:
        """Write the final marker and close; idempotent."""
        if not self._fh.closed:
            self._chunk(b"", final=True)
            self._fh.close()


@dataclass(frozen=True)
class DecryptedRecording:
    sample_rate: int
    channels: int
    pcm: bytes
    """Interleaved 16-bit little-endian PCM."""
    complete: bool
    """False: the writer never closed it (a crash); ``pcm`` holds every whole chunk."""

    def wav_bytes(self) -> bytes:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(self.channels)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.pcm)
        return buf.getvalue()


def decrypt_recording(path: Path, key: bytes) -> DecryptedRecording:
    """Read an encrypted recording; a truncated last chunk is dropped, a forged one raises."""
    if len(key) != KEY_BYTES:
        raise RecordingDecryptError("a recording key is 32 bytes")
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size or data[: len(MAGIC)] != MAGIC:
        raise RecordingDecryptError(f"{path}: not an encrypted recording")
    header = data[: _HEADER.size]
    _, rate, channels, bits, _ = _HEADER.unpack(header)
    if bits != 16 or channels < 1 or rate < 1:
        raise RecordingDecryptError(f"{path}: unsupported format")
    aead = AESGCM(key)
    out: list[bytes] = []
    pos, index, complete = _HEADER.size, 0, False
    while pos + _CHUNK.size <= len(data) and not complete:
        length, nonce = _CHUNK.unpack_from(data, pos)
        body = data[pos + _CHUNK.size: pos + _CHUNK.size + length]
        if len(body) < length:
            break  # cut short mid-chunk by a crash
        plain = None
        for final in (False, True):
            try:
                plain = aead.decrypt(nonce, body, header + _AAD_TAIL.pack(index, final))
            except InvalidTag:
                continue
            complete = final
            break
        if plain is None:
            raise RecordingDecryptError(f"{path}: wrong recording key or damaged chunk {index}")
        out.append(plain)
        pos += _CHUNK.size + length
        index += 1
    return DecryptedRecording(rate, channels, b"".join(out), complete)


def main(argv: list[str] | None = None) -> int:
    """``python -m telephony.recording_crypto IN.wav.enc OUT.wav --key-file K``: decrypt for listening."""
    import argparse
    import sys

    from telephony.settings import RecordingSettings

    ap = argparse.ArgumentParser(prog="python -m telephony.recording_crypto", description=main.__doc__)
    ap.add_argument("recording", type=Path)
    ap.add_argument("out", type=Path, help="the WAV to write (owner-only)")
    ap.add_argument("--key-file", type=Path, required=True, help="file with the base64 key")
    args = ap.parse_args(argv)
    try:
        key = RecordingSettings(encryption_key_file=args.key_file).key()
        assert key is not None
        plain = decrypt_recording(args.recording, key)
        with open_private(args.out) as fh:
            fh.write(plain.wav_bytes())
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not plain.complete:
        print(f"warning: {args.recording} was not closed (a crash): decrypted up to its last whole chunk",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

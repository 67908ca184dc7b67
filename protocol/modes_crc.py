"""Mode S CRC-24 (ICAO Annex 10 Vol IV, 3.1.2.3.3): the parity of every Mode S reply and ADS-B message, for the
decoder (vectorized over a batch of frames) and for encoders (a simulator's frames)."""
from __future__ import annotations

import numpy as np

GENERATOR = 0xFFF409  # Mode S CRC-24 polynomial (ICAO Annex 10 Vol IV, 3.1.2.3.3)


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc = ((crc << 1) ^ GENERATOR) if crc & 0x800000 else crc << 1
        table[byte] = crc & 0xFFFFFF
    return table


CRC_TABLE = _crc_table()


def crc_residues(frames: np.ndarray) -> np.ndarray:
    """CRC-24 residue of each row of an (n, 7) or (n, 14) uint8 array: data bytes through the table, XOR parity."""
    n, width = frames.shape
    crc = np.zeros(n, dtype=np.uint32)
    for col in range(width - 3):
        crc = ((crc << 8) & 0xFFFFFF) ^ CRC_TABLE[((crc >> 16) ^ frames[:, col]) & 0xFF]
    parity = (frames[:, -3].astype(np.uint32) << 16) | (frames[:, -2].astype(np.uint32) << 8) | frames[:, -1]
    return crc ^ parity


def crc_residue(frame: bytes) -> int:
    """One frame's residue (encoders and tests)."""
    return int(crc_residues(np.frombuffer(frame, dtype=np.uint8).reshape(1, -1))[0])

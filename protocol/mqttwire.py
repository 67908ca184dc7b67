"""MQTT wire-format helpers shared by Skylane's lean clients (the ingest receive path, the replay publisher)."""
from __future__ import annotations


def encode_varint(n: int) -> bytes:
    """MQTT's variable byte integer (remaining length): 7 bits per byte, high bit = more follows."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)

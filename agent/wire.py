"""Protobuf framing of bytes already serialized: a length-delimited field is its tag, the length
as a varint, then the bytes. Protobuf writes a message's fields in field-number order and a
repeated message field as one such field per element, so a message can be assembled from parts
serialized apart (each chunk once, as it is added) and equal, byte for byte, the message
serialized whole, without copying the parts into it first."""

from __future__ import annotations


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(tag: bytes, data: bytes) -> bytes:
    """One length-delimited field (`tag`: the field's key byte, e.g. b"\\x1a" for field 3)."""
    return tag + varint(len(data)) + data

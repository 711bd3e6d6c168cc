"""Reading an exec's multiplexed output (harness.execio)."""

from __future__ import annotations

import io
import struct

from harness.execio import STDERR, STDOUT, read_frames


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def test_frames_of_both_streams_are_joined_per_stream_in_order():
    raw = frame(STDOUT, b"one ") + frame(STDERR, b"oops\n") + frame(STDOUT, b"two\n") + frame(STDOUT, b"")
    assert read_frames(io.BufferedReader(io.BytesIO(raw), buffer_size=3)) == (b"one two\n", b"oops\n")


def test_a_stream_that_wrote_nothing_is_none_as_docker_py_has_it():
    assert read_frames(io.BytesIO(b"")) == (None, None)
    assert read_frames(io.BytesIO(frame(STDERR, b"e"))) == (None, b"e")


def test_a_stream_cut_short_keeps_what_came():
    raw = frame(STDOUT, b"whole\n") + frame(STDOUT, b"cut short")[:-4]
    assert read_frames(io.BytesIO(raw)) == (b"whole\ncut s", None)
    assert read_frames(io.BytesIO(frame(STDOUT, b"x") + b"\x01\x00")) == (b"x", None)

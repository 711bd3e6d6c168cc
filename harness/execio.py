"""The output of an exec, read so that none of it is lost.

docker-py's ``exec_start(..., demux=True)`` reads the exec's frames from the socket under
the buffered reader that read the response's headers. What the engine sent with the
headers is in that reader's buffer, and docker-py never sees it: a fast command's whole
output, whenever this process reads the response later than the command ends (a busy
interpreter, a loaded machine). The command then seems to have printed nothing and
exited 0 (docker/docker-py#2042). Here the frames are read through that buffered reader.
"""

from __future__ import annotations

import struct
from typing import Any

#: The stream numbers of the engine's multiplexed output (no TTY).
STDOUT, STDERR = 1, 2
#: Connections docker-py reads by other means (ssh's channel, Windows' named pipe): left to it.
_OTHER_TRANSPORTS = ("http+docker://ssh", "http+docker://localnpipe")


def exec_output(api: Any, exec_id: str) -> tuple[bytes | None, bytes | None]:
    """Start exec ``exec_id`` (created without a TTY) attached, and return its (stdout,
    stderr) once it ends, each None if it wrote nothing: as docker-py's
    ``api.exec_start(exec_id, demux=True)``, without its loss."""
    if api.base_url.startswith(_OTHER_TRANSPORTS):
        out = api.exec_start(exec_id, demux=True)
        return out if isinstance(out, tuple) else (out, None)
    response = api._post_json(
        api._url("/exec/{0}/start", exec_id),
        headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        data={"Tty": False, "Detach": False},
        stream=True,
    )
    try:
        # The socket: no timeout while the command runs (the caller bounds it); the
        # buffered reader over it: what was read with the headers, then the rest.
        api._disable_socket_timeout(api._get_raw_response_socket(response))
        return read_frames(response.raw._fp.fp)
    finally:
        response.close()


def read_frames(reader: Any) -> tuple[bytes | None, bytes | None]:
    """(stdout, stderr) of a multiplexed stream, read from ``reader`` to its end: frames of
    an 8-byte header (stream, 3 zero bytes, big-endian length) and that many bytes."""
    streams = {STDOUT: bytearray(), STDERR: bytearray()}
    while True:
        header = reader.read(8)
        if len(header) < 8:
            break
        stream, size = struct.unpack(">BxxxL", header)
        data = reader.read(size) if size else b""
        streams.setdefault(stream, bytearray()).extend(data)
        if len(data) < size:
            break
    return bytes(streams[STDOUT]) or None, bytes(streams[STDERR]) or None

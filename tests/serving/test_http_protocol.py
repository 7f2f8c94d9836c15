"""One write per fixed-length response (serving.http), and everything else written as before."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from mloop.serving.http import HTTP_PROTOCOL, _HeadWithBody
from mloop.serving.server import ServerThread


class RecordingTransport:
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"


def test_a_fixed_length_head_waits_for_its_body():
    transport = RecordingTransport()
    view = _HeadWithBody(transport)
    view.write(HEAD)
    assert transport.writes == []
    view.write(b"{}")
    assert transport.writes == [HEAD + b"{}"]
    view.write(b"more")  # nothing after the first body write is held
    assert transport.writes[-1] == b"more"


@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",  # streaming: head at once
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
)
def test_chunked_heads_and_continue_are_written_at_once(first):
    transport = RecordingTransport()
    view = _HeadWithBody(transport)
    view.write(first)
    assert transport.writes == [first]
    view.write(HEAD)  # only a response's first write can be held
    assert transport.writes == [first, HEAD]


def test_closing_writes_a_held_head_first():
    transport = RecordingTransport()
    view = _HeadWithBody(transport)
    view.write(HEAD)
    view.close()
    assert transport.writes == [HEAD]
    assert transport.closed and view.is_closing()
    assert view.get_extra_info("peername") == "info:peername"


FIRST_LINE_READ = threading.Event()


def _app() -> Starlette:
    async def fixed(_request):
        return JSONResponse({"ok": True})

    async def stream(_request):
        async def lines():
            yield b"first\n"
            # The rest waits until the client has read the first line: a held head would
            # leave both waiting until the client's timeout.
            await asyncio.to_thread(FIRST_LINE_READ.wait, 10)
            yield b"second\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def broken(_request):
        raise RuntimeError("boom")

    return Starlette(
        routes=[Route("/fixed", fixed), Route("/stream", stream), Route("/broken", broken)]
    )


@pytest.fixture(scope="module")
def server():
    with ServerThread(_app(), wait_for_model=False) as running:
        yield running


def test_the_server_uses_the_one_write_protocol(server):
    assert server.server.config.http is HTTP_PROTOCOL
    assert HTTP_PROTOCOL != "auto"  # httptools is installed with mloop


def test_keep_alive_and_pipelined_requests_get_whole_answers(server):
    request = b"GET /fixed HTTP/1.1\r\nhost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request * 3)  # pipelined
        data = b""
        while data.count(b'{"ok":true}') < 3:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 3
        sock.sendall(request)  # the connection is still usable
        again = b""
        while b'{"ok":true}' not in again:
            again += sock.recv(65536)


def test_a_streaming_response_arrives_while_it_is_produced(server):
    with httpx.Client(timeout=10) as client, client.stream("GET", f"{server.url}/stream") as reply:
        lines = reply.iter_lines()
        assert next(lines) == "first"
        FIRST_LINE_READ.set()
        assert next(lines) == "second"


def test_an_app_error_still_answers_500(server):
    assert httpx.get(f"{server.url}/broken").status_code == 500
    assert httpx.get(f"{server.url}/fixed").json() == {"ok": True}

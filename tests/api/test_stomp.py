"""STOMP 1.2 framing: encoding, escaping, content-length, partial reads, limits."""
import pytest

from ovirt_hosted_engine_setup.api import stomp
from ovirt_hosted_engine_setup.api.stomp import Frame, FrameError, FrameTooLarge, Parser


def test_encode_sets_content_length_and_nul():
    data = Frame('SEND', {'destination': 'q'}, b'{"a":1}').encode()
    assert data == b'SEND\ndestination:q\ncontent-length:7\n\n{"a":1}\0'


def test_header_escaping_round_trip():
    headers = {'we:ird\\name': 'line1\nline2\r:colon\\back'}
    data = Frame('MESSAGE', headers, b'x').encode()
    assert b'we\\cird\\\\name:line1\\nline2\\r\\ccolon\\\\back\n' in data
    (f,) = Parser().feed(data)
    assert f.headers['we:ird\\name'] == 'line1\nline2\r:colon\\back'


def test_connect_headers_are_not_escaped():
    data = Frame('CONNECT', {'accept-version': '1.2', 'host': 'a:b'}).encode()
    assert b'host:a:b\n' in data
    (f,) = Parser().feed(b'CONNECTED\nversion:1.2\nserver:x\\cy\n\n\0')
    assert f.headers['server'] == 'x\\cy'


def test_undefined_escape_is_an_error():
    with pytest.raises(FrameError):
        Parser().feed(b'MESSAGE\nbad:a\\tb\n\n\0')


def test_content_length_allows_nul_in_body():
    body = b'a\0b\0c'
    (f,) = Parser().feed(Frame('SEND', {}, body).encode())
    assert f.body == body


def test_body_without_content_length_ends_at_nul():
    (f,) = Parser().feed(b'SEND\ndestination:q\n\nhello\0')
    assert f.body == b'hello' and f.headers == {'destination': 'q'}


def test_first_repeated_header_wins():
    (f,) = Parser().feed(b'MESSAGE\nfoo:first\nfoo:second\n\n\0')
    assert f.headers['foo'] == 'first'


def test_crlf_line_endings():
    (f,) = Parser().feed(b'SEND\r\ndestination:q\r\n\r\nbody\0')
    assert f.command == 'SEND' and f.headers['destination'] == 'q' and f.body == b'body'


def test_heartbeats_between_frames():
    p = Parser()
    frames = p.feed(b'\n\n' + Frame('SEND', {}, b'1').encode() + b'\r\n\n'
                    + Frame('SEND', {}, b'2').encode() + b'\n')
    assert [f.body for f in frames] == [b'1', b'2']
    assert p.heartbeats == 5


def test_partial_reads_byte_by_byte():
    data = (Frame('SEND', {'destination': 'a', 'x': 'y:z'}, b'{"id": 1}').encode()
            + Frame('MESSAGE', {}, b'').encode())
    p = Parser()
    out = []
    for i in range(len(data)):
        out += p.feed(data[i:i + 1])
    assert [(f.command, f.body) for f in out] == [('SEND', b'{"id": 1}'), ('MESSAGE', b'')]
    assert out[0].headers == {'destination': 'a', 'x': 'y:z', 'content-length': '9'}


def test_oversized_by_content_length():
    p = Parser(max_frame=1000)
    with pytest.raises(FrameTooLarge):
        p.feed(b'SEND\ncontent-length:5000\n\n')


def test_oversized_without_content_length():
    p = Parser(max_frame=1000)
    p.feed(b'SEND\n\n' + b'x' * 500)
    with pytest.raises(FrameTooLarge):
        p.feed(b'x' * 600)


def test_oversized_headers():
    p = Parser(max_frame=1000)
    with pytest.raises(FrameTooLarge):
        p.feed(b'SEND\nh:' + b'x' * 2000)


def test_parser_refuses_after_error():
    p = Parser()
    with pytest.raises(FrameError):
        p.feed(b'lower\n\n\0')
    with pytest.raises(FrameError):
        p.feed(Frame('SEND').encode())


@pytest.mark.parametrize('data', [
    b'SEND\nno-colon-header\n\n\0',
    b'SEND\ncontent-length:abc\n\n\0',
    b'SEND\ncontent-length:3\n\nabcd\0',
    b'\xff\xfe\n\n\0',
])
def test_malformed(data):
    with pytest.raises(FrameError):
        Parser().feed(data)


def test_heartbeat_constant():
    assert stomp.HEARTBEAT == b'\n'


def test_receive_on_a_transport_closed_by_another_thread_is_end_of_stream():
    # The client's close() closes the socket while its reader may be about to
    # select() on it; that must read as the end of the stream, not a crash.
    import socket
    a, b = socket.socketpair()
    try:
        t = stomp.Transport(a)
        t.close()
        with pytest.raises((EOFError, OSError)):
            t.receive(0.1)
    finally:
        b.close()

"""STOMP 1.2 framing: encoding and an incremental parser with a size limit.

A frame is ``COMMAND\\n``, ``name:value\\n`` headers, a blank line, the body and
a NUL byte. Header names and values are escaped (``\\\\`` ``\\c`` ``\\n``
``\\r``) except in CONNECT and CONNECTED frames. A sender gives
``content-length`` so bodies may contain NUL; the first of repeated headers
wins. Between frames, end-of-line bytes are heart-beats.
"""

HEARTBEAT = b'\n'
DEFAULT_MAX_FRAME = 16 * 1024 * 1024

# Commands whose headers are never escaped (STOMP 1.2 "Value Encoding").
_RAW_COMMANDS = ('CONNECT', 'CONNECTED')

CLIENT_COMMANDS = frozenset(('SEND', 'SUBSCRIBE', 'UNSUBSCRIBE', 'BEGIN', 'COMMIT', 'ABORT',
                             'ACK', 'NACK', 'DISCONNECT', 'CONNECT', 'STOMP'))
SERVER_COMMANDS = frozenset(('CONNECTED', 'MESSAGE', 'RECEIPT', 'ERROR'))

_ESCAPES = {'\\': '\\\\', ':': '\\c', '\n': '\\n', '\r': '\\r'}
_UNESCAPES = {'\\': '\\', 'c': ':', 'n': '\n', 'r': '\r'}


class FrameError(Exception):
    """A malformed frame (the connection cannot go on after it)."""


class FrameTooLarge(FrameError):
    """A frame larger than the parser's limit."""


class Frame:
    """A STOMP frame: command, headers (dict of str) and body (bytes)."""

    def __init__(self, command, headers=None, body=b''):
        self.command = command
        self.headers = dict(headers or {})
        if isinstance(body, str):
            body = body.encode('utf-8')
        self.body = body

    def __repr__(self):
        return 'Frame(%r, %r, %d bytes)' % (self.command, self.headers, len(self.body))

    def __eq__(self, other):
        return (isinstance(other, Frame) and self.command == other.command
                and self.headers == other.headers and self.body == other.body)

    def encode(self):
        return encode(self)


def escape(text):
    return ''.join(_ESCAPES.get(ch, ch) for ch in text)


def unescape(text):
    out = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '\\':
            if i + 1 >= n or text[i + 1] not in _UNESCAPES:
                raise FrameError('undefined escape sequence in header %r' % text)
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return ''.join(out)


def encode(frame):
    """The bytes of frame, with content-length set to the body's length."""
    raw = frame.command in _RAW_COMMANDS
    lines = [frame.command]
    for name, value in frame.headers.items():
        if name == 'content-length':
            continue
        name, value = str(name), str(value)
        if raw:
            if '\n' in name + value or '\r' in name + value or ':' in name:
                raise ValueError('header %r cannot be sent in a %s frame' % (name, frame.command))
            lines.append('%s:%s' % (name, value))
        else:
            lines.append('%s:%s' % (escape(name), escape(value)))
    lines.append('content-length:%d' % len(frame.body))
    head = ('\n'.join(lines) + '\n\n').encode('utf-8')
    return head + frame.body + b'\0'


class Parser:
    """Incremental parser: feed() bytes as they come, get complete frames.

    A frame bigger than max_frame bytes (headers + body) raises FrameTooLarge;
    a malformed one raises FrameError. After either the stream is unusable.
    heartbeats counts the lone end-of-lines seen between frames.
    """

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self.heartbeats = 0
        self._buf = bytearray()
        self._head = None          # (command, headers, header bytes) once parsed
        self._length = None        # content-length of the frame in progress
        self._failed = None

    def feed(self, data):
        """Add bytes; return the list of frames now complete."""
        if self._failed:
            raise FrameError('parser stopped after an earlier error: %s' % self._failed)
        self._buf += data
        frames = []
        try:
            while True:
                frame = self._next()
                if frame is None:
                    break
                frames.append(frame)
        except FrameError as e:
            self._failed = str(e)
            raise
        return frames

    def _next(self):
        buf = self._buf
        if self._head is None:
            # Heart-beats (EOL) between frames.
            i = 0
            while i < len(buf):
                if buf[i:i + 1] == b'\n':
                    self.heartbeats += 1
                    i += 1
                elif buf[i:i + 2] == b'\r\n':
                    self.heartbeats += 1
                    i += 2
                elif buf[i:i + 1] == b'\r' and i + 1 == len(buf):
                    break
                else:
                    break
            if i:
                del buf[:i]
            if not buf:
                return None
            end = buf.find(b'\n\n')
            end_crlf = buf.find(b'\r\n\r\n')
            cands = [(e, 2) for e in (end,) if e >= 0] + [(e, 4) for e in (end_crlf,) if e >= 0]
            if not cands:
                # A CRLF-terminated header line followed by a bare LF blank line.
                mixed = buf.find(b'\r\n\n')
                if mixed >= 0:
                    cands = [(mixed, 3)]
            if not cands:
                if len(buf) > self.max_frame:
                    raise FrameTooLarge('frame headers larger than %d bytes' % self.max_frame)
                return None
            pos, sep = min(cands)
            if pos + sep > self.max_frame:
                raise FrameTooLarge('frame headers larger than %d bytes' % self.max_frame)
            head = bytes(buf[:pos])
            del buf[:pos + sep]
            self._head = self._parse_head(head)
            length = self._head[1].get('content-length')
            if length is not None:
                try:
                    self._length = int(length)
                except ValueError:
                    raise FrameError('invalid content-length %r' % length)
                if self._length < 0:
                    raise FrameError('invalid content-length %r' % length)
                if self._length + len(head) > self.max_frame:
                    raise FrameTooLarge('frame of %d bytes is larger than the limit of %d bytes'
                                        % (self._length + len(head), self.max_frame))
            else:
                self._length = None
        command, headers, head_len = self._head
        if self._length is not None:
            if len(buf) < self._length + 1:
                return None
            body = bytes(buf[:self._length])
            if buf[self._length] != 0:
                raise FrameError('frame body not terminated by NUL after content-length bytes')
            del buf[:self._length + 1]
        else:
            nul = buf.find(b'\0')
            if nul < 0:
                if len(buf) + head_len > self.max_frame:
                    raise FrameTooLarge('frame larger than %d bytes' % self.max_frame)
                return None
            if nul + head_len > self.max_frame:
                raise FrameTooLarge('frame larger than %d bytes' % self.max_frame)
            body = bytes(buf[:nul])
            del buf[:nul + 1]
        self._head = None
        self._length = None
        return Frame(command, headers, body)

    @staticmethod
    def _parse_head(head):
        try:
            text = head.decode('utf-8')
        except UnicodeDecodeError:
            raise FrameError('frame headers are not UTF-8')
        lines = text.split('\n')
        lines = [ln[:-1] if ln.endswith('\r') else ln for ln in lines]
        command = lines[0]
        if not command or not command.isalpha() or not command.isupper():
            raise FrameError('invalid frame command %r' % command[:40])
        raw = command in _RAW_COMMANDS
        headers = {}
        for line in lines[1:]:
            if ':' not in line:
                raise FrameError('invalid header line %r' % line[:80])
            name, value = line.split(':', 1)
            if not raw:
                name, value = unescape(name), unescape(value)
            headers.setdefault(name, value)   # the first of repeated headers wins
        return command, headers, len(head)


class Transport:
    """Frames over a (TLS) socket shared by a reading thread and sending threads.

    OpenSSL connections must not be used from two threads at once, so reads
    and writes take the same lock; the reader waits with select() outside it.
    """

    def __init__(self, sock, max_frame=DEFAULT_MAX_FRAME, io_timeout=10.0):
        import threading
        import time
        self._time = time
        self.sock = sock
        self.sock.settimeout(io_timeout)
        self.lock = threading.Lock()
        self.parser = Parser(max_frame)
        self.last_received = time.monotonic()

    def send(self, frame):
        data = frame if isinstance(frame, (bytes, bytearray)) else encode(frame)
        with self.lock:
            self.sock.sendall(data)

    def receive(self, timeout):
        """Frames received within timeout seconds ([] if none).

        Raises EOFError when the peer closed, FrameError on a malformed frame,
        OSError on a broken connection.
        """
        import select
        import socket
        import ssl
        pending = getattr(self.sock, 'pending', None)
        if not (pending and pending()):
            try:
                r, _, _ = select.select([self.sock], [], [], timeout)
            except ValueError:  # closed by another thread: fileno() is -1
                raise EOFError('connection closed')
            if not r:
                return []
        with self.lock:
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLWantReadError, socket.timeout):
                return []
        if not data:
            raise EOFError('connection closed by peer')
        self.last_received = self._time.monotonic()
        return self.parser.feed(data)

    def close(self):
        try:
            self.sock.shutdown(2)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

"""SSH_ASKPASS of the engine's host deploy: asks the engine for the root password.

ssh runs it with its prompt as argument; it sends the prompt to the unix socket
named by $OVIRT_LAB_ENGINE_ASKPASS_SOCKET (served by host_deploy.Askpass in a
0700 directory) and prints what comes back. The password is never in a file,
an argument or the environment.
"""
import os
import socket
import sys

ASKPASS_SOCKET_ENV = 'OVIRT_LAB_ENGINE_ASKPASS_SOCKET'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = os.environ.get(ASKPASS_SOCKET_ENV)
    if not path:
        sys.stderr.write('askpass: %s is not set: only the engine host deploy runs this\n'
                         % ASKPASS_SOCKET_ENV)
        return 1
    prompt = ' '.join(argv) or 'password'
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(prompt.encode('utf-8'))
            s.shutdown(socket.SHUT_WR)
            data = b''
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        sys.stderr.write('askpass: cannot reach the engine at %s: %s\n'
                         % (path, e.strerror or e))
        return 1
    if not data:
        return 1          # not a prompt the engine answers (ssh gives up)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())

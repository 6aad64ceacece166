"""ovirt-hosted-engine-rpc: call one host agent API verb from the shell.

    ovirt-hosted-engine-rpc [--host H] [--port P] [--insecure] [--timeout S]
                            NAMESPACE VERB [name=value ...]

As with vdsm-client, a value that parses as JSON is sent as JSON, anything
else as a string. The result is printed as JSON. On a server error the exit
status is 1 and "code N: message" goes to stderr.
"""
import argparse
import json
import logging
import os
import sys

from .client import DEFAULT_PORT, Client
from .errors import ApiError, ServerError


def parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(items):
    params = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name:
            raise ValueError('parameter %r is not name=value' % item)
        params[name] = parse_value(value)
    return params


def build_parser():
    p = argparse.ArgumentParser(
        prog='ovirt-hosted-engine-rpc',
        description='Call a host agent API verb (VDSM JSON-RPC) and print its result as JSON.')
    p.add_argument('--host', default='localhost', help='host agent address (default localhost)')
    p.add_argument('--port', type=int, default=DEFAULT_PORT, help='port (default %d)' % DEFAULT_PORT)
    p.add_argument('--insecure', action='store_true', help='plain TCP, no TLS')
    p.add_argument('--timeout', type=float, default=60.0, help='call timeout in seconds')
    p.add_argument('--root', default=None,
                   help="local host agent's root directory, for its client certificate")
    p.add_argument('--cafile', default=None)
    p.add_argument('--certfile', default=None)
    p.add_argument('--keyfile', default=None)
    p.add_argument('--debug', action='store_true', help='log the protocol to stderr')
    p.add_argument('namespace', help='e.g. Host')
    p.add_argument('verb', help='e.g. getCapabilities')
    p.add_argument('params', nargs='*', metavar='name=value')
    return p


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL,
                        stream=sys.stderr)
    try:
        params = parse_params(args.params)
    except ValueError as e:
        sys.stderr.write('ovirt-hosted-engine-rpc: %s\n' % e)
        return 2
    method = '%s.%s' % (args.namespace, args.verb)
    client = None
    try:
        client = Client(args.host, args.port, cafile=args.cafile, certfile=args.certfile,
                        keyfile=args.keyfile, insecure=args.insecure, timeout=args.timeout,
                        connect_timeout=min(args.timeout, 60.0), hostd_root=args.root)
        result = client.call(method, params)
    except ServerError as e:
        sys.stderr.write('code %s: %s\n' % (e.code, e.message))
        return 1
    except ApiError as e:
        sys.stderr.write('ovirt-hosted-engine-rpc: %s\n' % e)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if client is not None:
            client.close()
    try:
        json.dump(result, sys.stdout, indent=4, sort_keys=True)
        sys.stdout.write('\n')
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of the call.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == '__main__':
    sys.exit(main())

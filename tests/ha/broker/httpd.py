"""A real HTTP server on 127.0.0.1 for the health page tests, stopped by the test."""
import http.server
import threading


class HealthServer:
    """Serves ``body`` at /ovirt-engine/services/health (status ``code``); 404 elsewhere."""

    def __init__(self, body=b'DB Up!Welcome to Health Status!', code=200, delay=0.0):
        self.body = body
        self.code = code
        self.delay = delay
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                if outer.delay:
                    threading.Event().wait(outer.delay)
                if self.path != '/ovirt-engine/services/health':
                    self.send_error(404)
                    return
                self.send_response(outer.code)
                self.send_header('Content-Length', str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.fqdn = '127.0.0.1:%d' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

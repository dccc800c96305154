"""fake_http.py - the plumbing of the tests' fake HTTP servers (llm_server.py, vcece_server.py):
a handler that answers JSON and logs nothing to stderr, and serving it on 127.0.0.1 at a free
port that is written to DIR/port (renamed into place, so the C test never reads half a number)."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body):
        """Replies with code and body: bytes as they are, anything else as JSON."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler, out):
    """Serves handler until killed, once out/port names the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    with open(out + "/port.tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(out + "/port.tmp", out + "/port")
    server.serve_forever()

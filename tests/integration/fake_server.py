"""fake_server.py PORT FILE: an HTTP server that answers GET /metrics with the
bytes of FILE and GET /v1/devices with one device; for testing what gexec
makes of a server's hostile answers (cli_test.sh). Prints "ready" once
listening."""
import http.server
import sys

METRICS = open(sys.argv[2], "rb").read()
DEVICES = (b'{"devices":[{"name":"gpu0","kind":"cuda","slots":2,'
           b'"memory_used":1,"memory_total":2,"status":"ok"}]}')


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/metrics"):
            body, ctype = METRICS, "text/plain; version=0.0.4"
        elif self.path.startswith("/v1/devices"):
            body, ctype = DEVICES, "application/json"
        else:
            body, ctype = b"{}", "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()

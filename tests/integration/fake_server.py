"""fake_server.py PORT FILE [MODE]: an HTTP server that answers GET /metrics
with the bytes of FILE and GET /v1/devices with one device; for testing what
gexec makes of a server's hostile answers (cli_test.sh). MODE changes the
API's answers: "hang" never answers a job's GET (the connection stays open),
"stuckcursor" answers every listing page with the same next_cursor, "array"
answers every /v1 route with a JSON array instead of an object. Prints
"ready" once listening."""
import http.server
import sys
import time

METRICS = open(sys.argv[2], "rb").read()
MODE = sys.argv[3] if len(sys.argv) > 3 else ""
DEVICES = (b'{"devices":[{"name":"gpu0","kind":"cuda","slots":2,'
           b'"memory_used":1,"memory_total":2,"status":"ok"}]}')


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/metrics"):
            body, ctype = METRICS, "text/plain; version=0.0.4"
        elif MODE == "hang" and self.path.startswith("/v1/jobs/"):
            time.sleep(3600)
            return
        elif MODE == "stuckcursor" and self.path.startswith(("/v1/jobs", "/v1/keys")):
            member = b"jobs" if self.path.startswith("/v1/jobs") else b"keys"
            body, ctype = b'{"' + member + b'":[],"next_cursor":"1"}', "application/json"
        elif MODE == "array" and self.path.startswith("/v1/"):
            body, ctype = b"[]", "application/json"
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
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()

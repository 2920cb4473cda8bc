#!/usr/bin/env python3
"""A stand-in Kubernetes API server for the lab: TLS with a client certificate required (signed
by the lab's CA), answering /version and /api; every request is logged as "PATH CN" so a test
sees which client came through.

usage: kubeapi.py DIR PORT   (DIR holds ca.crt, server.crt, server.key; the log is DIR/requests.log)
"""
import http.server
import json
import os
import ssl
import sys

DIR, PORT = sys.argv[1], int(sys.argv[2])
LOG = os.path.join(DIR, "requests.log")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        subject = dict(x[0] for x in self.connection.getpeercert().get("subject", ()))
        with open(LOG, "a") as f:
            f.write(f"{self.path} {subject.get('commonName', '?')}\n")
        path = self.path.split("?")[0]
        if path == "/version":
            body = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-tether-lab",
                    "platform": "linux/amd64", "goVersion": "go1.22", "compiler": "gc"}
        elif path == "/api":
            body = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(DIR, "server.crt"), os.path.join(DIR, "server.key"))
ctx.load_verify_locations(os.path.join(DIR, "ca.crt"))
ctx.verify_mode = ssl.CERT_REQUIRED
server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()

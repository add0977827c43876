#!/usr/bin/env python3
"""A Graph webhook receiver, standard library only: answers the handshake, checks clientState, prints items (basic notifications; for resource data use `msgraph-notify serve`). Usage: emulator_receiver.py PORT"""
import hmac, json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse
SECRET = os.environ.get("CLIENT_STATE", "")

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        token = parse_qs(urlparse(self.path).query).get("validationToken")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200 if token else 202)  # the handshake echoes within 10 s; items get 202 within 3 s
        self.send_header("Content-Type", "text/plain"); self.end_headers()
        if token: return self.wfile.write(token[0].encode())
        for item in json.loads(body or b"{}").get("value", []):
            if hmac.compare_digest(str(item.get("clientState", "")).encode(), SECRET.encode()):
                print(json.dumps({k: item.get(k) for k in ("subscriptionId", "changeType", "resource", "lifecycleEvent")}), flush=True)
    def log_message(self, *args): pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()

#!/usr/bin/env python3
"""A tiny stand-in for the get-contact API for the systemd end-to-end test.

Serves POST /get-contact on 127.0.0.1 (port written to the file given as argv[1]); accepts only
`Authorization: Bearer <argv[2]>`; counts calls in argv[1] + ".calls". Knows John Smith and one
contact for every other number +1415555NNNN. While the file argv[1] + ".down" exists it answers
every call with 503, as an API in an outage would.
"""
import http.server, json, os, re, sys, threading

port_file, token = sys.argv[1], sys.argv[2]
contact = {"id": "c1d2e3f4-5678-9abc-def0-123456789abc", "phone_number": "+14155551234", "name": "John Smith"}
lock = threading.Lock()
calls = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global calls
        with lock:
            calls += 1
            with open(port_file + ".calls", "w") as f:
                f.write(str(calls))
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if os.path.exists(port_file + ".down"):
            return self.reply(503, {"error": "down"})
        if self.headers.get("authorization") != f"Bearer {token}":
            return self.reply(401, {"error": "bad token"})
        request = json.loads(body)
        if request.get("phone_number") == contact["phone_number"] or request.get("contact_id") == contact["id"]:
            return self.reply(200, contact)
        number = re.fullmatch(r"\+1415555(\d{4})", request.get("phone_number") or "")
        if number:
            return self.reply(200, {"id": f"e2e-{number[1]}", "phone_number": number[0], "name": f"Contact {number[1]}"})
        return self.reply(404, {"error": "not found"})

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()

#!/usr/bin/env python3
"""A stand-in candidate model for the replay walkthrough in the README.

Serves an OpenAI-compatible /v1/chat/completions on 127.0.0.1 (port from argv, default 18111)
that triages refund tickets by a rule slightly different from the one the logged model
followed: it escalates refunds over 400 EUR (not 500), and denies late deliveries reported
more than 40 days after delivery. Python standard library only; stop it with Ctrl-C.
"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def decide(text):
    m = re.search(r"Ticket (R-\d+): .*?(\d+) EUR, delivered (\d+) days ago\. Reason: ([^.]+)\.", text)
    if not m:
        return None, None
    ticket, amount, days, reason = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    if amount > 400:
        return ticket, "escalate"
    if reason == "changed my mind" and days > 30:
        return ticket, "deny_refund"
    if reason == "arrived late" and days > 40:
        return ticket, "deny_refund"
    return ticket, "approve_refund"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        user = " ".join(m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user")
        ticket, tool = decide(user)
        if tool is None:
            message = {"role": "assistant", "content": "I need the ticket details."}
            finish = "stop"
        else:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": tool, "arguments": json.dumps({"ticket": ticket})}}]}
            finish = "tool_calls"
        out = json.dumps({"id": "chatcmpl-candidate", "object": "chat.completion", "model": body.get("model"),
                          "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                          "usage": {"prompt_tokens": 200, "completion_tokens": 15, "total_tokens": 215}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18111
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()

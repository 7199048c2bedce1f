"""A scripted stand-in for the Anthropic Messages API, run inside the suite.

Claude Code talks to it through ANTHROPIC_BASE_URL; each session says who it
is with the `X-E2E-Agent` header (ANTHROPIC_CUSTOM_HEADERS). The "model"
answers the newest user turn with the first rule that matches it:

    Rule(r"RENAME (?P<name>\\S+)", tool="rename-agent", args={"name": "{name}"})

turns a typed prompt into a call of `mcp__switchboard__rename-agent` (a tool
with a capital letter, `Bash`, is one of Claude Code's own and keeps its name); a tool
result is answered with plain text, and so is anything no rule matches. Every
request is recorded (agent, newest user turn, whole conversation text), which
is what the scenarios assert on: what the model actually read.
"""

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MCP_PREFIX = "mcp__switchboard__"


@dataclass
class Rule:
    when: str
    tool: str
    args: dict = field(default_factory=dict)


@dataclass
class ToolResult:
    tool: str
    text: str
    is_error: bool


@dataclass
class Turn:
    seq: int
    agent: str
    prompt: str  # text of the newest user turn (prompts, <channel> tags)
    results: list  # ToolResult of the newest user turn
    conversation: str  # every text and tool result the request carries
    reply: str


def _text_of(content):
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if b.get("type") == "text")


def _conversation_text(messages):
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
            continue
        for block in content or []:
            if block.get("type") == "text":
                parts.append(block.get("text", ""))
            elif block.get("type") == "tool_result":
                parts.append(_text_of(block.get("content")))
    return "\n".join(parts)


def _newest_user_turn(messages):
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return "", []
    content = users[-1].get("content")
    if isinstance(content, str):
        return content, []
    names = {}
    for message in messages:
        if message.get("role") == "assistant" and isinstance(message.get("content"), list):
            for block in message["content"]:
                if block.get("type") == "tool_use":
                    names[block["id"]] = block["name"]
    prompt, results = [], []
    for block in content or []:
        if block.get("type") == "tool_result":
            results.append(
                ToolResult(
                    tool=names.get(block.get("tool_use_id"), "?"),
                    text=_text_of(block.get("content")),
                    is_error=bool(block.get("is_error")),
                )
            )
        elif block.get("type") == "text":
            prompt.append(block.get("text", ""))
    return "\n".join(prompt), results


class FakeModel:
    def __init__(self, rules):
        self.rules = rules
        self.turns = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()

    def wait_for(self, predicate, timeout):
        """The first recorded turn satisfying `predicate`, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for turn in self.turns:
                    if predicate(turn):
                        return turn
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)

    def all_turns(self):
        with self.lock:
            return list(self.turns)

    def _decide(self, prompt, results, offered):
        """-> (content blocks, reply summary)"""
        if results:
            text = "noted: " + results[-1].text[:200]
            return [{"type": "text", "text": text}], text
        if "<channel" in prompt:  # a message from another agent is read, never obeyed
            return [{"type": "text", "text": "ok"}], "ok"
        for rule in self.rules:
            match = re.search(rule.when, prompt)
            name = rule.tool if rule.tool[:1].isupper() else MCP_PREFIX + rule.tool
            if match and name in offered:
                args = {k: v.format(**match.groupdict()) for k, v in rule.args.items()}
                block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": name, "input": args}
                return [block], "call %s %s" % (rule.tool, json.dumps(args))
        return [{"type": "text", "text": "ok"}], "ok"

    def _record(self, agent, request):
        messages = request.get("messages") or []
        offered = {t.get("name") for t in request.get("tools") or []}
        prompt, results = _newest_user_turn(messages)
        blocks, reply = self._decide(prompt, results, offered)
        with self.changed:
            self.turns.append(
                Turn(len(self.turns) + 1, agent, prompt, results, _conversation_text(messages), reply)
            )
            self.changed.notify_all()
        return blocks

    def _handler(self):
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self):
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self):
                self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

            def do_POST(self):
                size = int(self.headers.get("content-length") or 0)
                try:
                    request = json.loads(self.rfile.read(size) or b"{}")
                except ValueError:
                    request = {}
                path = self.path.split("?")[0]
                if path == "/v1/messages/count_tokens":
                    return self._json(200, {"input_tokens": 1000})
                if path != "/v1/messages":
                    return self.do_GET()
                blocks = model._record(self.headers.get("X-E2E-Agent", ""), request)
                self._reply(request, blocks)

            def _reply(self, request, blocks):
                message = {
                    "id": "msg_" + uuid.uuid4().hex[:24],
                    "type": "message",
                    "role": "assistant",
                    "model": request.get("model", "fake"),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 5},
                }
                stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
                if not request.get("stream"):
                    return self._json(200, dict(message, content=blocks, stop_reason=stop))
                events = [("message_start", {"type": "message_start", "message": message})]
                for index, block in enumerate(blocks):
                    if block["type"] == "text":
                        start, delta = dict(block, text=""), {"type": "text_delta", "text": block["text"]}
                    else:
                        start = dict(block, input={})
                        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                    events += [
                        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
                        ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
                        ("content_block_stop", {"type": "content_block_stop", "index": index}),
                    ]
                events += [
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                       "usage": {"output_tokens": 5}}),
                    ("message_stop", {"type": "message_stop"}),
                ]
                body = "".join("event: %s\ndata: %s\n\n" % (name, json.dumps(data)) for name, data in events).encode()
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

#!/usr/bin/env python3
"""Writes redact-eval.jsonl: the labelled set that measures `redact`.

Label 1 lines carry a secret or a piece of personal data, and its exact text in
`secret`: redaction counts only if that string is gone from what is delivered.
Label 0 lines are what agents paste all day and must come through untouched:
log lines full of pids, ports and timestamps, git SHAs, UUIDs, hashes, base64
images, lockfile integrity strings, code, paths, versions.

Every value is generated here from a fixed seed (no real credential is in
it); the file is committed and read by redact's unit tests and by CI's
`switchboard check`. Run from this folder: python3 make_redact_eval.py
"""

import base64
import json
import random
import string
import uuid

SEED = 7
rng = random.Random(SEED)
B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"


def rand(alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix] + [rng.randrange(10) for _ in range(length - len(prefix) - 1)]
    for check in range(10):
        total = 0
        for i, d in enumerate(reversed(digits + [check])):
            if i % 2 == 1:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        if total % 10 == 0:
            return "".join(map(str, digits + [check]))
    raise AssertionError


def card():
    kind = rng.choice(["visa", "mc", "amex"])
    if kind == "amex":
        number = luhn_complete(rng.choice(["34", "37"]), 15)
        groups = [number[:4], number[4:10], number[10:]]
    else:
        number = luhn_complete("4" if kind == "visa" else rng.choice(["51", "55", "22"]), 16)
        groups = [number[i:i + 4] for i in range(0, 16, 4)]
    style = rng.choice(["plain", "space", "dash"])
    return "".join(groups) if style == "plain" else (" " if style == "space" else "-").join(groups)


def secrets():
    """(kind, value) pairs, as a tool or a person would produce them."""
    return [
        ("aws-secret", rand(B64, 40)),
        ("aws-access", "AKIA" + rand(string.ascii_uppercase + string.digits, 16)),
        ("github", "ghp_" + rand(B62, 36)),
        ("github-pat", "github_pat_" + rand(B62, 22) + "_" + rand(B62, 59)),
        ("slack", "xoxb-" + rand(string.digits, 12) + "-" + rand(string.digits, 12) + "-" + rand(B62, 24)),
        ("stripe", "sk_live_" + rand(B62, 24)),
        ("openai", "sk-proj-" + rand(B62, 48)),
        ("anthropic", "sk-ant-api03-" + rand(B62 + "-_", 93)),
        ("google", "AIza" + rand(B62 + "-_", 35)),
        ("npm", "npm_" + rand(B62, 36)),
        ("random", rand(B62, rng.choice([32, 40, 48, 64]))),
        ("random-b64", rand(B64, rng.choice([28, 44]))),
        ("session", rand(B62 + "-_", 43)),
    ]


def pii():
    first = rng.choice(["jane", "omar", "li", "ana", "piotr", "kwame", "sofia"])
    last = rng.choice(["doe", "haddad", "wei", "silva", "nowak", "mensah", "rossi"])
    domain = rng.choice(["gmail.com", "acme.io", "proton.me", "corp.co.uk", "outlook.com"])
    return [
        ("email", f"{first}.{last}@{domain}"),
        ("phone", f"+1 415 555 {rng.randrange(1000, 9999)}"),
        ("phone", f"+44 20 7946 {rng.randrange(1000, 9999)}"),
        ("phone", f"(212) 555-{rng.randrange(1000, 9999)}"),
        ("card", card()),
        ("card", card()),
    ]


SECRET_CONTEXTS = [
    "here's the key: {v}",
    "{v}",
    "use {v} for the staging deploy",
    "I rotated it, new one is {v} (old one revoked)",
    "export AWS_SECRET_ACCESS_KEY={v}",
    "The CI log printed {v} in plain text, we need to rotate it.",
    "curl -H 'Authorization: token {v}' https://api.example.net/repos",
    "password for the test db: {v}",
    "token={v}",
    "paste this into the dashboard:\n{v}\nthen restart",
]
PII_CONTEXTS = [
    "Contact {v} about the invoice.",
    "customer wrote from {v} asking for a refund",
    "call me at {v} if the deploy breaks",
    "test card that failed in prod: {v}",
    "The user's card {v} was charged twice.",
    "reach the on-call via {v}",
    "{v}",
]


def benign():
    pids = " ".join(str(rng.randrange(1000, 65000)) for _ in range(rng.randrange(3, 7)))
    ts = f"2026-{rng.randrange(1, 13):02}-{rng.randrange(1, 29):02}T{rng.randrange(24):02}:{rng.randrange(60):02}:{rng.randrange(60):02}.{rng.randrange(1000):03}Z"
    sha = rand("0123456789abcdef", 40)
    short = sha[:rng.choice([7, 8, 12])]
    uid = str(uuid.UUID(int=rng.getrandbits(128)))
    sha256 = rand("0123456789abcdef", 64)
    image = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randrange(120, 400)))).decode()
    integrity = "sha512-" + base64.b64encode(bytes(rng.randrange(256) for _ in range(64))).decode()
    port = rng.randrange(1024, 65535)
    num = lambda: str(rng.randrange(10**12, 10**13))
    ident = rng.choice(["handleWebSocketReconnect2", "TestParserHandlesUnicode", "ConnectionPoolMaxIdle30s",
                        "parse_http2_settings_frame", "XMLHttpRequestUpload", "useInfiniteScrollV2Hook"])
    lines = [
        f"still running: pids {pids}",
        f"{ts} INFO worker={rng.randrange(1, 64)} pid={rng.randrange(1000, 65000)} handled {rng.randrange(1000)} requests in {rng.randrange(1, 900)}ms",
        f"commit {sha} fixes the race in the reconnect path",
        f"cherry-pick {short} onto release-1.{rng.randrange(30)}",
        f"request id {uid} failed with 503 after 3 retries",
        f"sha256:{sha256} is the digest of the new image",
        f"checksum {sha256}  switchboard-linux-amd64.tar.gz",
        f"![logo](data:image/png;base64,{image})",
        f"\"integrity\": \"{integrity}\"",
        f"listening on 127.0.0.1:{port}, {rng.randrange(2, 64)} workers",
        f"order ids {num()} {num()} {num()} were refunded",
        f"timestamps: {rng.randrange(1_700_000_000_000, 1_800_000_000_000)} {rng.randrange(1_700_000_000_000, 1_800_000_000_000)}",
        f"the test {ident} is flaky on arm64",
        f"version 4.{rng.randrange(30)}.{rng.randrange(30)} of tokio fixes it; see src/runtime/scheduler/multi_thread/worker.rs:{rng.randrange(10, 900)}",
        f"p50 {rng.randrange(100, 999)} us, p99 {rng.randrange(1000, 9999)} us over {rng.randrange(10**5, 10**7)} messages",
        f"ISBN 978-{rng.randrange(0, 9)}-{rng.randrange(100, 999)}-{rng.randrange(10000, 99999)}-{rng.randrange(0, 9)} is the book",
        f"phone field max length is 15 digits, e.g. {rng.randrange(10**9, 10**10)} without the country code",
        f"ssh-keygen printed SHA256:{base64.b64encode(bytes(rng.randrange(256) for _ in range(32))).decode().rstrip('=')} for the host key, add it to known_hosts",
        f"go.sum: golang.org/x/net v0.{rng.randrange(40)}.0 h1:{base64.b64encode(bytes(rng.randrange(256) for _ in range(32))).decode()}",
        f"kubectl logs api-{rand('0123456789abcdef', 10)}-{rand(string.ascii_lowercase + string.digits, 5)} -n prod",
        f"the matrix is 4096 4096 4096 4096 floats per tile",
        f"set RUST_LOG=debug and rerun; the env var TOKEN_TTL_SECONDS=3600 is fine",
        f"The password must be at least 12 characters; ours are generated by the vault.",
        f"bench: {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)} ops",
    ]
    return lines


def main():
    rows = []
    for _ in range(12):
        for kind, value in secrets():
            text = rng.choice(SECRET_CONTEXTS).format(v=value)
            rows.append({"text": text, "label": 1, "category": "secret", "kind": kind, "secret": value})
        for kind, value in pii():
            text = rng.choice(PII_CONTEXTS).format(v=value)
            rows.append({"text": text, "label": 1, "category": "pii", "kind": kind, "secret": value})
    for _ in range(25):
        for text in benign():
            rows.append({"text": text, "label": 0})
    seen = set()
    with open("redact-eval.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            if row["text"] in seen:
                continue
            seen.add(row["text"])
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"redact-eval.jsonl: {len(seen)} rows")


if __name__ == "__main__":
    main()

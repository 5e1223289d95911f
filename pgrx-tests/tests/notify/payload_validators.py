"""The e2e suite's payload validators, each the provider's own tooling,
run from the venv scripts/setup.sh makes (scripts/test-requirements.txt).
Each line of stdin is `<kind>\t<body>`:

- `slack`: a message to an incoming webhook. Every attachment must be a
  slack-sdk BlockAttachment (color, fallback, blocks; no legacy fields)
  whose blocks slack-sdk parses, validates (its JsonValidators: Block Kit's
  documented limits) and writes back unchanged (so no key is one slack-sdk
  does not know); limits of Slack's reference that slack-sdk does not check
  are checked here.
- `pagerduty`: an Events API v2 event against PagerDuty's OpenAPI request
  schema (schemas/pagerduty-events-v2.json), with no key it does not
  define, and the documented limits (summary 1 024 characters, dedup_key
  255, an event at most 512 KB). A body without `routing_key` (as the
  outbox stores it; the worker adds the key as it sends) gets a stand-in.
- `msteams`: a Workflows webhook message — `type` "message", attachments of
  content type `application/vnd.microsoft.card.adaptive` — whose card
  validates against Microsoft's Adaptive Card 1.4 schema
  (schemas/adaptive-card-1.4.0.json) — besides Teams' documented
  `"msteams": {"width": "Full"}` — at most 28 KB.

    python payload_validators.py < bodies.tsv   (prints "valid N"; exit 1
                                                  and the problems otherwise)
"""
import json
import sys
from datetime import datetime
from pathlib import Path

from jsonschema import Draft6Validator, Draft7Validator, FormatChecker
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block

# docs.slack.dev/reference/block-kit: a section's fields 2 000 characters
# each; a message's text 40 000; at most 50 blocks.
FIELD_CHARS = 2000
TEXT_CHARS = 40000
MAX_BLOCKS = 50


def slack(message):
    out = []
    text = message.get("text")
    if not isinstance(text, str) or not text or len(text) > TEXT_CHARS:
        out.append(f"text must be 1..{TEXT_CHARS} characters")
    extra = set(message) - {"text", "attachments"}
    if extra:
        out.append(f"unexpected top-level keys {sorted(extra)}")
    for i, att in enumerate(message.get("attachments", [])):
        where = f"attachments[{i}]"
        if set(att) != {"color", "fallback", "blocks"}:
            out.append(f"{where}: keys {sorted(att)} are not a block attachment's")
            continue
        if len(att["blocks"]) > MAX_BLOCKS:
            out.append(f"{where}: {len(att['blocks'])} blocks")
        blocks = []
        for j, raw in enumerate(att["blocks"]):
            block = Block.parse(raw)
            if block is None:
                out.append(f"{where}.blocks[{j}]: slack-sdk knows no block {raw.get('type')!r}")
                continue
            try:
                block.validate_json()
            except SlackObjectFormationError as e:
                out.append(f"{where}.blocks[{j}]: {e}")
                continue
            if block.to_dict() != raw:
                out.append(f"{where}.blocks[{j}]: slack-sdk writes {block.to_dict()} for {raw}")
            for f in raw.get("fields", []):
                if len(f["text"]) > FIELD_CHARS:
                    out.append(f"{where}.blocks[{j}]: a field of {len(f['text'])} characters")
            blocks.append(block)
        try:
            sdk = BlockAttachment(blocks=blocks, color=att["color"], fallback=att["fallback"])
            sdk.validate_json()
        except SlackObjectFormationError as e:
            out.append(f"{where}: {e}")
            continue
        written = sdk.to_dict()
        written.pop("text", None)  # slack-sdk's BlockAttachment always has text ""
        if written != att:
            out.append(f"{where}: slack-sdk writes {written}")
    return out


HERE = Path(__file__).resolve().parent / "schemas"
PAGERDUTY = json.loads((HERE / "pagerduty-events-v2.json").read_text())
CARD = json.loads((HERE / "adaptive-card-1.4.0.json").read_text())


def strict(schema):
    """The same schema with no keys but the documented ones, at the event's
    top level and in its payload."""
    s = json.loads(json.dumps(schema))
    s["additionalProperties"] = False
    s["definitions"]["Payload"]["additionalProperties"] = False
    return s


PD = Draft7Validator(strict(PAGERDUTY), format_checker=FormatChecker())
AC = Draft6Validator(CARD, format_checker=FormatChecker())


def size(body):
    """Bytes of the body as the worker sends it: compact UTF-8 JSON."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def pagerduty(body):
    out = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in PD.iter_errors(body)]
    payload = body.get("payload") or {}
    if len(payload.get("summary", "")) > 1024:
        out.append("payload.summary over 1 024 characters")
    if len(body.get("dedup_key", "")) > 255:
        out.append("dedup_key over 255 characters")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
        except ValueError:
            out.append(f"payload.timestamp {payload['timestamp']!r} is not ISO 8601")
    if body.get("event_action") == "trigger" and "payload" not in body:
        out.append("a trigger needs a payload")
    if body.get("event_action") != "trigger" and "dedup_key" not in body:
        out.append("acknowledge and resolve need a dedup_key")
    if size(body) > 512 * 1024:
        out.append("event over 512 KB")
    return out


def msteams(body):
    out = []
    if body.get("type") != "message" or set(body) != {"type", "attachments"}:
        out.append(f"not a Workflows message: keys {sorted(body)}, type {body.get('type')!r}")
    for i, att in enumerate(body.get("attachments", [])):
        if att.get("contentType") != "application/vnd.microsoft.card.adaptive":
            out.append(f"attachments[{i}].contentType {att.get('contentType')!r}")
        card = att.get("content")
        if not isinstance(card, dict) or card.get("version") != "1.4":
            out.append(f"attachments[{i}]: not an Adaptive Card 1.4")
            continue
        # Teams' own card extension (full-width cards), documented by Teams
        # and not part of the Adaptive Card schema, which allows no other key.
        card = dict(card)
        teams = card.pop("msteams", {"width": "Full"})
        if teams != {"width": "Full"}:
            out.append(f"attachments[{i}].content.msteams {teams!r}")
        out += [f"attachments[{i}].content/{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in AC.iter_errors(card)]
    if size(body) > 28 * 1024:
        out.append("message over 28 KB")
    return out


KINDS = {"slack": slack, "pagerduty": pagerduty, "msteams": msteams}


def main():
    n, bad = 0, []
    for line in sys.stdin:
        if not line.strip():
            continue
        kind, raw = line.rstrip("\n").split("\t", 1)
        body = json.loads(raw)
        if kind == "pagerduty":
            body.setdefault("routing_key", "0123456789abcdef0123456789abcdef")
        check = KINDS.get(kind)
        problems = check(body) if check else [f"unknown kind {kind!r}"]
        n += 1
        bad += [f"body {n} ({kind}): {p}" for p in problems]
    if bad or n == 0:
        print("\n".join(bad) or "no bodies")
        sys.exit(1)
    print(f"valid {n}")


if __name__ == "__main__":
    main()

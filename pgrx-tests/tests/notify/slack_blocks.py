"""Validates Slack messages the way Slack's own Python SDK builds them, for
the e2e suite: each line of stdin is one message pg_vigil would post to an
incoming webhook. Every attachment must be a slack-sdk BlockAttachment
(color, fallback, blocks; no legacy fields) whose blocks slack-sdk parses,
validates (its JsonValidators: Block Kit's documented limits) and writes
back unchanged (so no key is one slack-sdk does not know). Limits of
Slack's reference that slack-sdk does not check are checked here.

    python slack_blocks.py < messages.jsonl   (prints "valid N"; exit 1 and
                                               the problems otherwise)
"""
import json
import sys

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block

# docs.slack.dev/reference/block-kit: a section's fields 2 000 characters
# each; a message's text 40 000; at most 50 blocks.
FIELD_CHARS = 2000
TEXT_CHARS = 40000
MAX_BLOCKS = 50


def problems(message):
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


def main():
    n, bad = 0, []
    for line in sys.stdin:
        if not line.strip():
            continue
        n += 1
        for p in problems(json.loads(line)):
            bad.append(f"message {n}: {p}")
    if bad or n == 0:
        print("\n".join(bad) or "no messages")
        sys.exit(1)
    print(f"valid {n}")


if __name__ == "__main__":
    main()

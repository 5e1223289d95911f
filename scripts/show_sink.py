"""Prints what the demo's local sink received: Slack messages roughly as
Slack renders them, webhooks as their Alertmanager-style summary."""

import html
import json
import sys

for line in open(sys.argv[1], encoding="utf-8"):
    _us, key, body = line.rstrip("\n").split("\t", 2)
    # Slack shows &lt; &gt; &amp; as the characters they stand for.
    msg = json.loads(html.unescape(body))
    if "attachments" in msg:
        att = msg["attachments"][0]
        print(f"\n[slack] {msg['text']}   (colour {att.get('color')}, Idempotency-Key {key[:8]}…)")
        if att.get("text") and att.get("text") != att.get("title"):
            print(f"    {att['text']}")
        for f in att.get("fields", []):
            value = f["value"].replace("\n", "\n        ")
            print(f"    {f['title']}: {value}")
        print(f"    — {att.get('footer', '')}")
    else:
        a = msg.get("alerts", [{}])[0]
        labels = a.get("labels", {})
        print(f"\n[webhook] status={msg.get('status')} {labels.get('alertname')} "
              f"severity={labels.get('severity')} entity={labels.get('entity')} "
              f"fingerprint={a.get('fingerprint')}")

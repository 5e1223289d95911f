"""An SMTP server on 127.0.0.1 for the email channel's e2e test (Debian's
python3-aiosmtpd): every accepted message is appended to OUT as one JSON
line; recipients starting with "tempfail" get 451 on their first RCPT (then
250), recipients starting with "reject" always get 550.

    python3 smtp_sink.py PORT OUT     (prints "ready"; stops when stdin closes)
"""
import json
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out):
        self.out = out
        self.tries = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such user here"
        if address.startswith("tempfail"):
            n = self.tries.get(address, 0)
            self.tries[address] = n + 1
            if n == 0:
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
            }) + "\n")
        return "250 Message accepted"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Handler(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()

"""An SMTP server on 127.0.0.1 for the email channels' e2e tests (Debian's
python3-aiosmtpd): every accepted message is appended to OUT as one JSON
line {"from", "to", "data", "tls", "login"}; recipients starting with
"tempfail" get 451 on their first RCPT (then 250), recipients starting with
"reject" always get 550.

    python3 smtp_sink.py PORT OUT [--starttls CERT KEY | --implicit-tls CERT KEY]
                                  [--auth USER PASSWORD]

(prints "ready"; stops when stdin closes)

Without options the server is plain and offers no STARTTLS. --starttls
offers STARTTLS and refuses every command but EHLO/HELO/NOOP/QUIT/STARTTLS
before it; --implicit-tls speaks TLS from the first byte (SMTPS). --auth
offers AUTH PLAIN/LOGIN over TLS only (never in clear), accepts that one login and
refuses MAIL before a successful AUTH (530). "tls" is the session's TLS
version ("TLSv1.3"), null in clear; "login" the authenticated user, or
null. Neither the password nor a failed login's password is written
anywhere.
"""
import argparse
import json
import logging
import ssl
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


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
        # The transport after STARTTLS, or the SMTPS one, is the TLS layer.
        tls = server.transport.get_extra_info("ssl_object")
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": tls.version() if tls is not None else None,
                "login": login,
            }) + "\n")
        return "250 Message accepted"


class Authenticator:
    """Accepts one username/password (PLAIN or LOGIN)."""

    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == self.user
              and auth_data.password == self.password)
        # handled=False: aiosmtpd replies 535 itself to a refused login.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def server_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("out")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    tls.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
    a = p.parse_args()
    # aiosmtpd's own log (a traceback for each handshake the client refuses,
    # which the tests do on purpose; its deprecated login_data) is noise.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    kwargs = {}
    if a.starttls:
        kwargs.update(tls_context=server_context(*a.starttls), require_starttls=True)
    if a.implicit_tls:
        kwargs.update(ssl_context=server_context(*a.implicit_tls))
    if a.auth:
        # aiosmtpd knows TLS from STARTTLS only: with SMTPS every byte is
        # already TLS, so its own "AUTH over TLS only" check (and its
        # warning that it is off) stays off.
        if a.implicit_tls:
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        kwargs.update(authenticator=Authenticator(*a.auth), auth_required=True,
                      auth_require_tls=not a.implicit_tls)
    controller = Controller(Handler(a.out), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()

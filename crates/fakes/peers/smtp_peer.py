#!/usr/bin/python3
"""A real SMTP server for the smtp output's tests: aiosmtpd (Debian's python3-aiosmtpd) on
127.0.0.1 with STARTTLS required, AUTH PLAIN/LOGIN for one user, every accepted mail stored in a
Maildir before the 250 answer, and recipients at refused.example refused with 550.

Usage: smtp_peer.py PORT MAILDIR CERT KEY USER PASSWORD
Prints "ready" once it listens; runs until killed or its stdin closes.
"""
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    import logging, os
    if os.environ.get("SMTP_PEER_LOG"):
        logging.basicConfig(filename=os.environ["SMTP_PEER_LOG"], level=logging.DEBUG)
    port, maildir, cert, key, user, password = sys.argv[1:7]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(server, session, envelope, mechanism, data):
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        # handled=False: aiosmtpd answers (535 on a refusal); True would leave the client waiting.
        return AuthResult(success=ok, handled=False)

    class Handler(Mailbox):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.endswith("@refused.example"):
                return "550 5.1.1 <%s>: mailbox unavailable" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

    controller = Controller(
        Handler(maildir),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

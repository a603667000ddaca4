"""Email through SMTP (the standard library's ``smtplib``): one message per batch of events of one
subscription, a plain-text and an HTML part (``multipart/alternative``).

Security: ``starttls`` (the server must offer STARTTLS, else nothing is sent), ``tls`` (implicit TLS,
port 465) or ``none``; certificates are verified (the system's CAs, or ``ca_file``). Credentials come
from the environment (``{env: NAME}``) and never appear in an error.

Replies: a 4xx (greylisting, a busy server), a dropped connection or a timeout is retried with
backoff; a 5xx (a rejected sender or recipient, failed authentication) is not: the deliveries are
recorded ``failed`` with the server's reply. The ``Message-ID`` is built from the first delivery id,
so a message resent after a crash is recognisable as the same.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Sequence

from destinations.delivery import DeliveryFailed, RetryPolicy


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"[:300]


def build_message(sender: str, to: Sequence[str], subject: str, text: str, html: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = " ".join(subject.split())  # one line: a template's newlines never become headers
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def message_id(delivery_id: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1].strip(" >") or "activitylog"
    return f"<{delivery_id}@{domain}>" if delivery_id else make_msgid(domain=domain)


class EmailClient:
    def __init__(self, host: str, port: int, *, security: str = "starttls", username: str | None = None,
                 password: str | None = None, ca_file: str | None = None, sender: str, to: Sequence[str],
                 timeout: float = 30.0, policy: RetryPolicy = RetryPolicy()) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.sender, self.to = sender, list(to)
        self.timeout = timeout
        self.policy = policy
        self._context = ssl.create_default_context(cafile=ca_file) if security != "none" else None
        self.where = f"SMTP {host}:{port}"

    def close(self) -> None:
        pass

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise DeliveryFailed(f"{self.where} does not offer STARTTLS (security: starttls); nothing sent")
            smtp.starttls(context=self._context)
            smtp.ehlo()
        return smtp

    def send(self, subject: str, text: str, html: str, delivery_id: str) -> int:
        """Send one message; returns the attempts it took. Raises :class:`DeliveryFailed`."""
        message = build_message(self.sender, self.to, subject, text, html, message_id(delivery_id, self.sender))
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            smtp = None
            try:
                smtp = self._connect()
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(message, from_addr=self.sender, to_addrs=self.to)
                if refused:  # some recipients accepted: the message is out; name the others
                    shown = "; ".join(f"{a}: {_reply(c, m)}" for a, (c, m) in sorted(refused.items()))
                    raise DeliveryFailed(f"{self.where} refused recipients ({shown})")
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                shown = "; ".join(f"{a}: {_reply(c, m)}" for a, (c, m) in sorted(exc.recipients.items()))
                raise DeliveryFailed(f"{self.where} refused every recipient ({shown})",
                                     retryable=all(400 <= c < 500 for c in codes)) from None
            except smtplib.SMTPAuthenticationError as exc:
                raise DeliveryFailed(f"{self.where} refused the login: {_reply(exc.smtp_code, exc.smtp_error)}",
                                     retryable=400 <= exc.smtp_code < 500) from None
            except smtplib.SMTPResponseException as exc:
                raise DeliveryFailed(f"{self.where} answered {_reply(exc.smtp_code, exc.smtp_error)}",
                                     retryable=400 <= exc.smtp_code < 500) from None
            except ssl.SSLError as exc:
                raise DeliveryFailed(f"{self.where}: TLS failed ({exc.reason or exc})") from None
            except smtplib.SMTPNotSupportedError as exc:
                raise DeliveryFailed(f"{self.where}: {exc}") from None
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, socket.timeout, TimeoutError,
                    OSError) as exc:
                raise DeliveryFailed(f"{self.where} unreachable ({type(exc).__name__}: {exc})", retryable=True) from None
            finally:
                if smtp is not None:
                    try:
                        smtp.quit()
                    except (smtplib.SMTPException, OSError):
                        smtp.close()

        self.policy.call(attempt, self.where)
        return attempts

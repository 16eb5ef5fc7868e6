"""Safe-mode (AES) crypto for the webhook, with key rotation.

WeChat lets an account change its EncodingAESKey; pushes already in flight still use the old
one. The official advice (WECHAT.md §1.4): keep the current and the previous key, try the
current one first, and encrypt the reply with whichever key decrypted the push.

wechatpy does the AES; this wraps it so that every failure becomes one of two exceptions
(bad signature / cannot decrypt) and the 16-byte random prefix comes from ``secrets``
(wechatpy uses ``random``) or, for the official test vectors, from the caller.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

ALPHABET = string.ascii_letters + string.digits


class BadSignature(Exception):
    """msg_signature does not cover this Encrypt: a forged or damaged push."""


class CannotDecrypt(Exception):
    """The signature was right but no configured key opens the message."""


def _prp_class(random16: str | None):
    class _Prp(PrpCrypto):
        def get_random_string(self) -> str:
            return random16 or "".join(secrets.choice(ALPHABET) for _ in range(16))

    return _Prp


@dataclass
class KeyCrypto:
    """One EncodingAESKey: decrypts pushes and encrypts replies."""

    token: str
    encoding_aes_key: str
    appid: str

    def __post_init__(self) -> None:
        self._crypto = WeChatCrypto(self.token, self.encoding_aes_key, self.appid)

    def decrypt(self, body: str | dict, msg_signature: str, timestamp: str, nonce: str) -> str:
        return self._crypto.decrypt_message(body, msg_signature, timestamp, nonce)

    def encrypt(self, xml: str, nonce: str, timestamp: str | None = None, random16: str | None = None) -> str:
        """The reply envelope (Encrypt, MsgSignature, TimeStamp, Nonce)."""
        return self._crypto._encrypt_message(xml, nonce, timestamp, crypto_class=_prp_class(random16))

    def encrypt_text(self, text: str, random16: str | None = None) -> str:
        """Only the base64 ciphertext (for checking the official vectors)."""
        return _prp_class(random16)(self._crypto.key).encrypt(text, self.appid).decode()


class EdgeCrypto:
    def __init__(self, token: str, appid: str, current_key: str, previous_key: str = ""):
        self.keys = [KeyCrypto(token, current_key, appid)]
        if previous_key and previous_key != current_key:
            self.keys.append(KeyCrypto(token, previous_key, appid))

    def decrypt(self, body: str, msg_signature: str, timestamp: str, nonce: str) -> tuple[str, KeyCrypto]:
        """The plaintext XML and the key that opened it (use that key for the reply)."""
        last_error: Exception | None = None
        for key in self.keys:
            try:
                return key.decrypt(body, msg_signature, timestamp, nonce), key
            except InvalidSignatureException as exc:
                # The signature covers token, timestamp, nonce and Encrypt, not the key:
                # another key cannot make it right.
                raise BadSignature(str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - binascii/struct/ValueError/KeyError/UnicodeDecodeError/InvalidAppId
                last_error = exc
        raise CannotDecrypt(f"{type(last_error).__name__}: {last_error}") from last_error

"""wechatpy's client, made safe for many processes.

- One access_token for all processes, stored in Redis through wechatpy's RedisStorage, and
  one refresher at a time (a Redis lock): independent refreshers invalidate each other's
  tokens on the real platform (WECHAT.md §3.1).
- ``auto_retry=False``: wechatpy's own 40001 retry has no limit (487 token fetches, then
  RecursionError, WECHAT.md §5.4). ``call_with_token_retry`` refreshes once, retries once.
- Every HTTP call has a timeout, the token fetch included (wechatpy's has none).
- The API base URL is configurable so the demo and tests talk to bot/standin.py.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import redis
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from bot import defaults
from storage.keys import Keys

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}
# Refresh this long before WeChat's expiry; the platform keeps the old token valid 5 minutes.
TOKEN_MARGIN_SECONDS = 300


class TokenFetchError(WeChatClientException):
    """The token endpoint failed. With an errcode (40013 appid, 40125 secret, 40164 IP not on the
    whitelist, ...) the account's configuration is wrong: no retry will help until staff fix it.
    Without one (timeout, connection error, HTTP 5xx) it is transient."""


class BureauWeChatClient(WeChatClient):
    def __init__(self, appid: str, secret: str, r: redis.Redis, keys: Keys, api_base_url: str,
                 timeout: float):
        super().__init__(appid, secret, session=RedisStorage(r, prefix=keys.wechat_session_prefix()),
                         timeout=timeout or defaults.HTTP_TIMEOUT_SECONDS, auto_retry=False)
        self.API_BASE_URL = api_base_url if api_base_url.endswith("/") else api_base_url + "/"
        self.redis = r
        self.keys = keys
        self._token_lock = keys.token_lock()
        # Loopback stand-in and production alike: never route WeChat calls through a proxy
        # picked up from the environment.
        self._http.trust_env = False

    @property
    def access_token(self) -> str:
        # Trust what Redis holds (it expires early, see fetch); fetch only when absent.
        token = self.session.get(self.access_token_key)
        return token or self.fetch_access_token()["access_token"]

    def fetch_access_token(self, stale: str | None = None) -> dict[str, Any]:
        """Fetch a token unless another process already did while we waited for the lock.

        ``stale``: the token WeChat just rejected; a stored token equal to it is not reused.
        """
        wait = (self.timeout or 5) + 5
        with self.redis.lock(self._token_lock, timeout=wait, blocking_timeout=wait):
            current = self.session.get(self.access_token_key)
            if current and current != stale:
                return {"access_token": current}
            log.info("fetching access_token for %s", self.appid)
            try:
                res = self._http.get(self.API_BASE_URL + "token", timeout=self.timeout, params={
                    "grant_type": "client_credential", "appid": self.appid, "secret": self.secret})
                res.raise_for_status()
                result = res.json()
            except (requests.RequestException, ValueError) as exc:
                raise TokenFetchError(errcode=None, errmsg=f"token fetch failed: {exc}", client=self) from exc
            if result.get("errcode"):
                raise TokenFetchError(result["errcode"], f"token fetch refused: {result.get('errmsg', '')}",
                                      client=self)
            expires_in = int(result.get("expires_in", 7200))
            self.session.set(self.access_token_key, result["access_token"],
                             max(60, expires_in - TOKEN_MARGIN_SECONDS))
            self.expires_at = int(time.time()) + expires_in
            return result

    def call_with_token_retry(self, call: Callable[[], Any]) -> Any:
        """Run an API call; on an expired/invalid token refresh once and retry once.

        A second token error is raised to the caller (bot/outbound.py retries it later with
        backoff): no loop, no recursion, at most one token fetch per call.
        """
        try:
            return call()
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            rejected = _token_in(exc) or self.session.get(self.access_token_key)
            log.warning("token rejected (%s), refreshing once", exc.errcode)
            self.fetch_access_token(stale=rejected)
            return call()


def _token_in(exc: WeChatClientException) -> str | None:
    """The access_token the refused request carried (so we never "refresh" to that same token)."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("access_token")
    return values[0] if values else None

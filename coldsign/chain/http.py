"""A small HTTP client over the stdlib, shared by the Bitcoin Core and Esplora chain sources.

What it guarantees, so the sources do not each re-invent it:
- a timeout on every request (per socket operation *and* a deadline for the whole answer, so a
  server trickling bytes cannot hold the coordinator forever);
- bounded retries with exponential backoff for connection errors, timeouts and transient 5xx
  answers, never for 4xx (asking again will not change a refusal);
- a hard size limit on every answer (read at most `max_bytes + 1` bytes);
- the credentials only ever in the Authorization header: they are not in `description`, reprs
  or error messages.

Every failure is an `EnvironmentProblem` (exit 7) that names the source by its description. The
helpers at the end (`nonsense`, `expect_*`) phrase "the source answered something that is not the
documented format" the same way for both sources.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable

from coldsign.errors import BadInput, EnvironmentProblem, TransactionDecodeError

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2                       # two more attempts after the first
DEFAULT_BACKOFF = 0.5                     # seconds before the first retry, doubled each time
DEFAULT_MAX_BYTES = 50 * 1024 * 1024      # no legitimate answer of either source is near this
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    content_type: str

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _Transient(Exception):
    """A failure worth another attempt; `text` says what happened (no credentials)."""

    def __init__(self, text: str, answer: HttpAnswer | None = None):
        super().__init__(text)
        self.text = text
        self.answer = answer


def _default_transient(answer: HttpAnswer) -> bool:
    return answer.status >= 500


class HttpClient:
    """Requests to one HTTP(S) server. `description` names it in messages ("Esplora at …").

    `transient(answer)` decides which non-2xx answers are retried (default: every 5xx); the last
    answer is returned as is when the retries run out, so the caller can still read its body.
    """

    def __init__(self, host: str, port: int, *, description: str, tls: bool = False,
                 base_path: str = "", auth: tuple[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF, max_bytes: int = DEFAULT_MAX_BYTES,
                 transient: Callable[[HttpAnswer], bool] = _default_transient):
        self.host = host
        self.port = port
        self.description = description
        self.tls = tls
        self.base_path = base_path.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_bytes = max_bytes
        self._transient = transient
        # NOTE: the only place the credentials live; never formatted into any message.
        self._authorization = None
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._authorization = f"Basic {token}"

    def __repr__(self) -> str:
        return f"HttpClient({self.description!r}, auth={'yes' if self._authorization else 'no'})"

    def set_auth(self, auth: tuple[str, str]) -> None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._authorization = f"Basic {token}"

    def request(self, method: str, path: str, body: bytes | None = None, *,
                content_type: str = "application/json", timeout: float | None = None,
                retry: bool = True) -> HttpAnswer:
        """One request, retried as described above. `timeout` overrides the client's (a long
        scan); `retry=False` for calls that must not be repeated blindly."""
        timeout = self.timeout if timeout is None else timeout
        attempts = 1 + (self.retries if retry else 0)
        delay = self.backoff
        last: _Transient | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                answer = self._once(method, path, body, content_type, timeout)
            except _Transient as e:
                last = e
                continue
            if answer.status >= 300 and self._transient(answer):
                last = _Transient(f"HTTP {answer.status}", answer)
                continue
            return answer
        assert last is not None
        if last.answer is not None:
            return last.answer
        tries = f" (tried {attempts} times)" if attempts > 1 else ""
        raise EnvironmentProblem(f"{self.description} is unreachable: {last.text}{tries}",
                                 code="source-unreachable",
                                 hint="check that the server is running, the host and port of the chain "
                                      "source's address, and the network between them")

    def _once(self, method: str, path: str, body: bytes | None, content_type: str,
              timeout: float) -> HttpAnswer:
        deadline = time.monotonic() + timeout
        if self.tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {"Accept": "application/json, text/plain", "Connection": "close",
                   "User-Agent": "coldsign"}
        if body is not None:
            headers["Content-Type"] = content_type
        if self._authorization:
            headers["Authorization"] = self._authorization
        try:
            conn.request(method, self.base_path + path, body=body, headers=headers)
            response = conn.getresponse()
            length = response.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                raise self._too_large()
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise socket.timeout()
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                chunks.append(chunk)
            return HttpAnswer(response.status, b"".join(chunks),
                              response.getheader("Content-Type", "") or "")
        except (socket.timeout, TimeoutError):
            raise _Transient(f"no answer within {timeout:g} s") from None
        except ssl.SSLCertVerificationError as e:
            raise EnvironmentProblem(f"{self.description} has a certificate that does not verify: "
                                     f"{e.verify_message}", code="source-tls",
                                     hint="check the host name in the chain source's address") from None
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            raise _Transient(_describe_connection_error(e)) from None
        finally:
            conn.close()

    def _too_large(self) -> EnvironmentProblem:
        return EnvironmentProblem(f"{self.description} sent an answer larger than the limit of "
                                  f"{self.max_bytes} bytes", code="source-nonsense",
                                  hint="check that --source points at the right server")


def _describe_connection_error(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    if isinstance(e, socket.gaierror):
        return "unknown host name"
    if isinstance(e, http.client.IncompleteRead):
        return "the answer was cut short"
    if isinstance(e, http.client.HTTPException):
        return f"broken HTTP answer ({type(e).__name__})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return type(e).__name__


# -- checking answers against the documented formats ---------------------------------------------

_HEX64 = re.compile(r"[0-9a-f]{64}")


def nonsense(description: str, what: str) -> EnvironmentProblem:
    """The source answered something its documented format does not allow."""
    return EnvironmentProblem(f"nonsense from {description}: {what}", code="source-nonsense",
                              hint="check that --source points at the right kind of server; "
                                   "nothing was changed")


def expect(description: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """`value` must be of `kind` (bool is not accepted where an int is expected)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise nonsense(description, f"{what} is {value!r}, not {_kind_names(kinds)}")
    if not isinstance(value, kinds):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise nonsense(description, f"{what} is {shown}, not {_kind_names(kinds)}")
    return value


def expect_field(description: str, doc: Any, key: str, kind: type | tuple[type, ...],
                 what: str) -> Any:
    if not isinstance(doc, dict):
        raise nonsense(description, f"{what} is not a JSON object")
    if key not in doc:
        raise nonsense(description, f"{what} has no {key!r}")
    return expect(description, doc[key], kind, f"{what}.{key}")


def expect_hash(description: str, value: Any, what: str) -> str:
    """A txid or block hash: 64 lowercase hex digits."""
    text = expect(description, value, str, what)
    if not _HEX64.fullmatch(text):
        raise nonsense(description, f"{what} is not 64 hex digits")
    return text


def expect_count(description: str, value: Any, what: str) -> int:
    """A non-negative integer (height, vout, satoshis)."""
    number = expect(description, value, int, what)
    if number < 0:
        raise nonsense(description, f"{what} is negative")
    return number


def expect_hex(description: str, value: Any, what: str) -> bytes:
    text = expect(description, value, str, what)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise nonsense(description, f"{what} is not hex") from None


def raw_transaction_txid(description: str, raw: bytes, what: str) -> str:
    """The txid of a raw transaction from a source (display hex); nonsense if it does not parse."""
    from embit.transaction import Transaction

    try:
        tx = Transaction.parse(raw)
    except Exception:  # noqa: BLE001 - embit raises bare ValueError/IndexError/EOFError on junk
        raise nonsense(description, f"{what} is not a transaction") from None
    return tx.txid().hex()


def txid_argument(txid: str) -> str:
    """A txid the caller asks about, lowercased; BadInput if it is not 64 hex digits."""
    text = str(txid).strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise BadInput(f"{txid!r} is not a transaction id (64 hex digits)")
    return text


def own_txid(tx: bytes) -> str:
    """The txid of a transaction coldsign is about to send; TransactionDecodeError if it does not parse."""
    from embit.transaction import Transaction

    try:
        return Transaction.parse(bytes(tx)).txid().hex()
    except Exception:  # noqa: BLE001 - embit raises bare ValueError/IndexError on junk
        raise TransactionDecodeError("this is not a valid transaction",
                                     hint="finalize the PSBT first (coldsign psbt finalize)") from None


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "an object", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)

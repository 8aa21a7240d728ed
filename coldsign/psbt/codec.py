"""The PSBT codec: BIP-174 (v0), BIP-370 (v2) and BIP-371 taproot fields.

A PSBT is a global map, one map per input and one per output. Each `PsbtMap` keeps its entries in
the order read, so a valid PSBT re-serializes byte for byte; unknown key types are kept verbatim.
`Psbt.parse` validates every known field (see `fields.py`), duplicate keys, the v0/v2 required and
forbidden fields and the counts, and enforces `coldsign.limits.LIMITS` before allocating. Every
problem is a `PSBTDecodeError` whose message says what and where ("input 2: ...").

Written here rather than taken from embit 0.8.0, whose PSBT class reorders fields, keeps
PSBT_IN_TAP_KEY_SIG in `unknown` and shares one mutable default dict between scopes. embit's
`Transaction` still represents the transactions inside.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Iterator, Sequence

from embit.hashes import double_sha256

from coldsign.errors import BadInput, PSBTDecodeError
from coldsign.limits import LIMITS
from coldsign.psbt import fields as F
from coldsign.psbt.fields import FieldProblem, Reader, compact_size
from coldsign.psbt.views import InputView, OutputView, _fail, _parse_tx, _typed

PSBT_MAGIC = b"psbt\xff"


class PsbtMap:
    """Ordered key-value entries of one scope; a key is keytype (compact size) + keydata."""

    def __init__(self, entries: list[tuple[int, bytes, bytes]] | None = None):
        self.entries: list[tuple[int, bytes, bytes]] = list(entries or [])
        # Parsed values by key type, valid while the entry holds the very same value object: a
        # previous transaction is parsed once, however often it is read. Never mutate a result.
        self._parsed: dict[int, tuple[bytes, object]] = {}

    def parsed(self, keytype: int, value: bytes, parse):
        cached = self._parsed.get(keytype)
        if cached is not None and cached[0] is value:
            return cached[1]
        result = parse(value)
        self._parsed[keytype] = (value, result)
        return result

    def get(self, keytype: int, keydata: bytes = b"") -> bytes | None:
        for t, k, v in self.entries:
            if t == keytype and k == keydata:
                return v
        return None

    def items(self, keytype: int) -> list[tuple[bytes, bytes]]:
        return [(k, v) for t, k, v in self.entries if t == keytype]

    def set(self, keytype: int, keydata: bytes, value: bytes) -> None:
        """Replace the value in place, or insert after the last entry of the same type (else before
        the first entry of a higher type): this keeps a map ordered by type if it was."""
        keydata, value = bytes(keydata), bytes(value)
        position = len(self.entries)
        for i, (t, k, _) in enumerate(self.entries):
            if t == keytype and k == keydata:
                self.entries[i] = (keytype, keydata, value)
                return
        same = [i for i, (t, _, _) in enumerate(self.entries) if t == keytype]
        if same:
            position = same[-1] + 1
        else:
            higher = [i for i, (t, _, _) in enumerate(self.entries) if t > keytype]
            if higher:
                position = higher[0]
        self.entries.insert(position, (keytype, keydata, value))

    def remove(self, keytype: int, keydata: bytes | None = None) -> None:
        self.entries = [(t, k, v) for t, k, v in self.entries
                        if not (t == keytype and (keydata is None or k == keydata))]

    def __iter__(self) -> Iterator[tuple[int, bytes, bytes]]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PsbtMap) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"PsbtMap({len(self.entries)} entries: {[hex(t) for t, _, _ in self.entries]})"

    def serialize(self) -> bytes:
        out = bytearray()
        for t, k, v in self.entries:
            key = compact_size(t) + k
            out += compact_size(len(key)) + key + compact_size(len(v)) + v
        return bytes(out) + b"\x00"

    def copy(self) -> "PsbtMap":
        twin = PsbtMap(self.entries)
        twin._parsed = dict(self._parsed)
        return twin


def _read_map(r: Reader, where: str) -> PsbtMap:
    entries: list[tuple[int, bytes, bytes]] = []
    seen: set[tuple[int, bytes]] = set()
    while True:
        if not r.remaining:
            raise _fail(where, "map is truncated (no 0x00 separator)")
        try:
            keylen = r.compact_size()
            if keylen == 0:
                return PsbtMap(entries)
            if keylen > LIMITS.psbt_max_key_bytes:
                raise FieldProblem(f"key of {keylen} bytes exceeds the limit of {LIMITS.psbt_max_key_bytes}")
            key = Reader(r.read(keylen), "key")
            keytype = key.compact_size()
            keydata = key.read(key.remaining)
            size = r.compact_size()
            if size > LIMITS.psbt_max_value_bytes:
                raise FieldProblem(f"value declares {size} bytes, more than the limit of "
                                   f"{LIMITS.psbt_max_value_bytes}")
            value = r.read(size)
        except FieldProblem as e:
            raise _fail(where, f"entry {len(entries)}: {e}") from None
        if (keytype, keydata) in seen:
            fields = {"global": F.GLOBAL_FIELDS, "input": F.INPUT_FIELDS}.get(
                where.split()[0], F.OUTPUT_FIELDS)
            raise _fail(where, f"duplicate key {F.field_name(fields, keytype)}")
        seen.add((keytype, keydata))
        entries.append((keytype, keydata, value))
        if len(entries) > LIMITS.psbt_max_map_entries:
            raise _fail(where, f"more than {LIMITS.psbt_max_map_entries} entries")


def _check_map(m: PsbtMap, where: str, fields: dict[int, F.Field], version: int) -> None:
    """Validate every known entry's key data and value, and the version's required/forbidden fields."""
    for keytype, keydata, value in m:
        spec = fields.get(keytype)
        if spec is None:
            continue
        if version not in spec.versions:
            raise _fail(where, f"{spec.name} is not allowed in PSBT version {version}")
        _typed(where, fields, keytype, spec.keydata, keydata)
        if spec.value is not None:
            _typed(where, fields, keytype, spec.value, value)
        if spec.pair is not None:
            _typed(where, fields, keytype, spec.pair, keydata, value)
    present = {t for t, _, _ in m}
    for keytype, spec in fields.items():
        if version in spec.required_in and keytype not in present:
            raise _fail(where, f"{spec.name} is required in PSBT version {version} but missing")


class Psbt:
    """A parsed PSBT: `version` (0 or 2), `globals`, `inputs`, `outputs` (PsbtMaps)."""

    def __init__(self, version: int, globals: PsbtMap, inputs: list[PsbtMap], outputs: list[PsbtMap]):
        self.version = version
        self.globals = globals
        self.inputs = inputs
        self.outputs = outputs

    # --- reading ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes) -> "Psbt":
        """Parse binary PSBT bytes; `PSBTDecodeError` (what and where) on anything invalid."""
        data = bytes(data)
        if len(data) > LIMITS.psbt_max_bytes:
            raise PSBTDecodeError(f"PSBT is {len(data)} bytes, more than the limit of "
                                  f"{LIMITS.psbt_max_bytes}")
        if not data.startswith(PSBT_MAGIC):
            raise PSBTDecodeError("not a PSBT: the data does not start with the magic 70736274ff")
        r = Reader(data, "PSBT")
        r.read(len(PSBT_MAGIC))
        g = _read_map(r, "global")
        version = _typed("global", F.GLOBAL_FIELDS, F.PSBT_GLOBAL_VERSION, F.u32,
                         g.get(F.PSBT_GLOBAL_VERSION)) if g.get(F.PSBT_GLOBAL_VERSION) is not None else 0
        if version not in (0, 2):
            raise _fail("global", f"unsupported PSBT version {version} (coldsign reads 0 and 2)")
        _check_map(g, "global", F.GLOBAL_FIELDS, version)
        tx = None
        if version == 0:
            tx = _parse_tx("global", F.GLOBAL_FIELDS, F.PSBT_GLOBAL_UNSIGNED_TX,
                           g.get(F.PSBT_GLOBAL_UNSIGNED_TX), allow_witness=False)
            for i, txin in enumerate(tx.vin):
                if txin.script_sig.data:
                    raise _fail("global", f"unsigned transaction input {i} has a scriptSig")
            n_in, n_out = len(tx.vin), len(tx.vout)
        else:
            n_in = F.exact_compact(g.get(F.PSBT_GLOBAL_INPUT_COUNT))
            n_out = F.exact_compact(g.get(F.PSBT_GLOBAL_OUTPUT_COUNT))
        if n_in > LIMITS.psbt_max_inputs:
            raise _fail("global", f"{n_in} inputs exceed the limit of {LIMITS.psbt_max_inputs}")
        if n_out > LIMITS.psbt_max_outputs:
            raise _fail("global", f"{n_out} outputs exceed the limit of {LIMITS.psbt_max_outputs}")
        if n_in + n_out > r.remaining:  # every map takes at least its 0x00 separator
            raise PSBTDecodeError(f"PSBT declares {n_in} inputs and {n_out} outputs but only "
                                  f"{r.remaining} bytes of maps follow")
        inputs = [cls._read_scope(r, f"input {i}", F.INPUT_FIELDS, version) for i in range(n_in)]
        outputs = [cls._read_scope(r, f"output {i}", F.OUTPUT_FIELDS, version) for i in range(n_out)]
        if r.remaining:
            raise PSBTDecodeError(f"PSBT has {r.remaining} trailing bytes after output map {n_out - 1}"
                                  if n_out else f"PSBT has {r.remaining} trailing bytes after its maps")
        psbt = cls(version, g, inputs, outputs)
        if tx is not None:
            psbt._tx_cache = (g.get(F.PSBT_GLOBAL_UNSIGNED_TX), tx)
        for i in range(n_in):  # every previous transaction must parse (the result is kept)
            InputView(inputs[i], i, tx).non_witness_utxo
        # NOTE: a previous transaction that is not the one spent is left to the review, which
        # refuses it by name (previous-tx-mismatch) and shows it in `inspect`, rather than failing here.
        return psbt

    @staticmethod
    def _read_scope(r: Reader, where: str, fields: dict, version: int) -> PsbtMap:
        if not r.remaining:
            raise _fail(where, "map is missing (the PSBT ends early)")
        m = _read_map(r, where)
        _check_map(m, where, fields, version)
        return m

    # --- writing ---------------------------------------------------------------------------------
    def serialize(self) -> bytes:
        return PSBT_MAGIC + b"".join(m.serialize() for m in [self.globals, *self.inputs, *self.outputs])

    def to_base64(self) -> str:
        return base64.b64encode(self.serialize()).decode()

    def copy(self) -> "Psbt":
        twin = Psbt(self.version, self.globals.copy(), [m.copy() for m in self.inputs],
                    [m.copy() for m in self.outputs])
        if hasattr(self, "_tx_cache"):  # the parsed unsigned tx is read only: share it
            twin._tx_cache = self._tx_cache
        return twin

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Psbt) and self.version == other.version
                and self.globals == other.globals and self.inputs == other.inputs
                and self.outputs == other.outputs)

    def __repr__(self) -> str:
        return f"Psbt(v{self.version}, {len(self.inputs)} inputs, {len(self.outputs)} outputs)"

    # --- typed access ----------------------------------------------------------------------------
    def _global_tx(self, fresh: bool = False):
        """The v0 unsigned tx, parsed once per distinct value (views only read it)."""
        if self.version != 0:
            return None
        raw = self.globals.get(F.PSBT_GLOBAL_UNSIGNED_TX)
        cached = getattr(self, "_tx_cache", None)
        if fresh or cached is None or cached[0] != raw:
            tx = _parse_tx("global", F.GLOBAL_FIELDS, F.PSBT_GLOBAL_UNSIGNED_TX, raw,
                           allow_witness=False)
            if fresh:
                return tx
            self._tx_cache = cached = (raw, tx)
        return cached[1]

    def input(self, i: int) -> InputView:
        return InputView(self.inputs[i], i, self._global_tx())

    def output(self, i: int) -> OutputView:
        return OutputView(self.outputs[i], i, self._global_tx())

    @property
    def tx_version(self) -> int:
        if self.version == 0:
            return self._global_tx().version
        return F.i32(self.globals.get(F.PSBT_GLOBAL_TX_VERSION))

    @property
    def locktime(self) -> int:
        """v0: the unsigned tx's; v2: BIP-370 "Determining Lock Time"."""
        if self.version == 0:
            return self._global_tx().locktime
        views = [InputView(m, i) for i, m in enumerate(self.inputs)]
        times = [(v.required_time_locktime, v.required_height_locktime) for v in views]
        constrained = [t for t in times if t != (None, None)]
        if not constrained:
            fallback = self.globals.get(F.PSBT_GLOBAL_FALLBACK_LOCKTIME)
            return 0 if fallback is None else F.u32(fallback)
        if all(h is not None for _, h in constrained):
            return max(h for _, h in constrained)
        if all(t is not None for t, _ in constrained):
            return max(t for t, _ in constrained)
        raise PSBTDecodeError("no locktime satisfies every input: some require a height-based "
                              "locktime and others a time-based one")

    def unsigned_tx(self, *, shared: bool = False):
        """v0: the global unsigned transaction; v2: the transaction built from the fields.
        `shared=True` (v0) returns the parsed object the views use, without a copy: read only."""
        if self.version == 0:
            return self._global_tx(fresh=not shared)
        from embit.script import Script
        from embit.transaction import Transaction, TransactionInput, TransactionOutput

        vin = []
        for i, m in enumerate(self.inputs):
            view = InputView(m, i)
            txid, vout = view.prevout
            vin.append(TransactionInput(bytes.fromhex(txid), vout, sequence=view.sequence))
        vout_list = [TransactionOutput(v.amount, Script(v.script))
                     for v in (OutputView(m, i) for i, m in enumerate(self.outputs))]
        return Transaction(version=self.tx_version, vin=vin, vout=vout_list, locktime=self.locktime)

    def txid(self) -> str:
        if self.version == 0:  # the global unsigned tx is in the legacy serialization: hash it as is
            raw = self.globals.get(F.PSBT_GLOBAL_UNSIGNED_TX)
            return double_sha256(raw)[::-1].hex()
        return self.unsigned_tx().txid().hex()

    def unique_id(self) -> str:
        """BIP-370 unique identification: the txid with every sequence set to 0 (v0: the txid)."""
        tx = self.unsigned_tx()
        if self.version == 2:
            for txin in tx.vin:
                txin.sequence = 0
        return tx.txid().hex()


def decode_psbt(data: bytes) -> Psbt:
    """Binary (magic 70736274ff), base64 or hex PSBT → `Psbt`; the size limit is checked first."""
    limit = LIMITS.psbt_max_bytes
    if len(data) > 2 * limit + 4096:  # the longest text form (hex) plus some whitespace
        raise PSBTDecodeError(f"input is {len(data)} bytes, too large for a PSBT of at most {limit} bytes")
    if bytes(data[:5]) == PSBT_MAGIC:
        return Psbt.parse(data)
    text = bytes(data).translate(None, b" \t\r\n\x0b\x0c")
    tried = ["binary (no 70736274ff magic)"]
    if text and all(c in b"0123456789abcdefABCDEF" for c in text[:16]):
        if len(text) > 2 * limit:
            raise PSBTDecodeError(f"hex text is {len(text)} characters, over the {limit}-byte PSBT limit")
        try:
            raw = binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            tried.append("hex (not valid hex)")
        else:
            if raw.startswith(PSBT_MAGIC):
                return Psbt.parse(raw)
            tried.append("hex (decoded, but no PSBT magic)")
    if len(text) > (limit + 2) // 3 * 4:
        raise PSBTDecodeError(f"base64 text is {len(text)} characters, over the {limit}-byte PSBT limit")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        tried.append("base64 (not valid base64)")
    else:
        if raw.startswith(PSBT_MAGIC):
            return Psbt.parse(raw)
        tried.append("base64 (decoded, but no PSBT magic)")
    raise PSBTDecodeError("not a PSBT: tried " + "; ".join(tried))


def _same_transaction(a: Psbt, b: Psbt) -> bool:
    if a.version != b.version:
        return False
    if a.version == 0:
        return a.globals.get(F.PSBT_GLOBAL_UNSIGNED_TX) == b.globals.get(F.PSBT_GLOBAL_UNSIGNED_TX)
    return (a.tx_version == b.tx_version and len(a.inputs) == len(b.inputs)
            and len(a.outputs) == len(b.outputs)
            and all(a.input(i).prevout == b.input(i).prevout for i in range(len(a.inputs)))
            and all((a.output(i).amount, a.output(i).script) == (b.output(i).amount, b.output(i).script)
                    for i in range(len(a.outputs))))


def combine(psbts: Sequence[Psbt]) -> Psbt:
    """BIP-174 combiner: merge every map of PSBTs of the same transaction; first writer wins."""
    if not psbts:
        raise BadInput("nothing to combine: no PSBT given")
    result = psbts[0].copy()
    for n, other in enumerate(psbts[1:], start=1):
        if not _same_transaction(result, other):
            raise BadInput(f"cannot combine: PSBT {n} is for different transactions than PSBT 0",
                           hint="combine only PSBTs signed from the same unsigned PSBT")
        pairs = [(result.globals, other.globals), *zip(result.inputs, other.inputs),
                 *zip(result.outputs, other.outputs)]
        for mine, theirs in pairs:
            for keytype, keydata, value in theirs:
                if mine.get(keytype, keydata) is None:
                    mine.set(keytype, keydata, value)
    return result


# The fields that say which transaction a PSBT is of (BIP-174 v0, BIP-370 v2): all a signer's
# answer needs besides its signatures.
_TRANSACTION_FIELDS = (
    {F.PSBT_GLOBAL_UNSIGNED_TX, F.PSBT_GLOBAL_TX_VERSION, F.PSBT_GLOBAL_FALLBACK_LOCKTIME, F.PSBT_GLOBAL_INPUT_COUNT,
     F.PSBT_GLOBAL_OUTPUT_COUNT, F.PSBT_GLOBAL_TX_MODIFIABLE, F.PSBT_GLOBAL_VERSION},
    {F.PSBT_IN_PREVIOUS_TXID, F.PSBT_IN_OUTPUT_INDEX, F.PSBT_IN_SEQUENCE, F.PSBT_IN_REQUIRED_TIME_LOCKTIME,
     F.PSBT_IN_REQUIRED_HEIGHT_LOCKTIME},
    {F.PSBT_OUT_AMOUNT, F.PSBT_OUT_SCRIPT},
)


def signatures_only(signed: Psbt, unsigned: Psbt) -> Psbt:
    """A signer's answer, and nothing else: the transaction `signed` is of, and each input's entries
    that `unsigned` did not have (the new signatures). The coordinator, who holds the rest, merges
    it with the BIP-174 combiner; the previous transactions, scripts and derivations, most of a
    PSBT's bytes, do not cross the air gap again."""
    if not _same_transaction(signed, unsigned):
        raise BadInput("the signed PSBT is of another transaction than the unsigned one")
    globals_, inputs_, outputs_ = _TRANSACTION_FIELDS

    def kept(m: PsbtMap, types: set[int], before: PsbtMap | None = None) -> PsbtMap:
        return PsbtMap([(t, k, v) for t, k, v in m if t in types
                        or (before is not None and before.get(t, k) != v)])

    return Psbt(signed.version, kept(signed.globals, globals_),
                [kept(m, inputs_, before) for m, before in zip(signed.inputs, unsigned.inputs)],
                [kept(m, outputs_) for m in signed.outputs])


def extract_transaction(psbt: Psbt):
    """BIP-174 extractor: the network transaction, refused (BadInput) unless every input is final."""
    from embit.script import Script, Witness

    tx = psbt.unsigned_tx()
    for i, txin in enumerate(tx.vin):
        view = psbt.input(i)
        if not view.is_final:
            raise BadInput(f"input {i} is not finalized: it has neither PSBT_IN_FINAL_SCRIPTSIG nor "
                           "PSBT_IN_FINAL_SCRIPTWITNESS", hint="finalize every input first")
        txin.script_sig = Script(view.final_script_sig or b"")
        txin.witness = Witness(view.final_script_witness or [])
    return tx


def psbt_sha256(psbt: Psbt) -> str:
    """Hex SHA-256 of the serialized PSBT (what the signer logs and shows)."""
    return hashlib.sha256(psbt.serialize()).hexdigest()


def to_version_2(psbt: Psbt) -> Psbt:
    """The same PSBT in BIP-370 form: the unsigned transaction moved into per-map fields."""
    if psbt.version == 2:
        return psbt.copy()
    tx = psbt.unsigned_tx(shared=True)
    g = PsbtMap([e for e in psbt.globals if e[0] != F.PSBT_GLOBAL_UNSIGNED_TX])
    g.set(F.PSBT_GLOBAL_TX_VERSION, b"", tx.version.to_bytes(4, "little"))
    g.set(F.PSBT_GLOBAL_FALLBACK_LOCKTIME, b"", tx.locktime.to_bytes(4, "little"))
    g.set(F.PSBT_GLOBAL_INPUT_COUNT, b"", compact_size(len(tx.vin)))
    g.set(F.PSBT_GLOBAL_OUTPUT_COUNT, b"", compact_size(len(tx.vout)))
    g.set(F.PSBT_GLOBAL_VERSION, b"", (2).to_bytes(4, "little"))
    inputs = []
    for m, txin in zip(psbt.inputs, tx.vin):
        m = m.copy()
        m.set(F.PSBT_IN_PREVIOUS_TXID, b"", txin.txid[::-1])
        m.set(F.PSBT_IN_OUTPUT_INDEX, b"", txin.vout.to_bytes(4, "little"))
        m.set(F.PSBT_IN_SEQUENCE, b"", txin.sequence.to_bytes(4, "little"))
        inputs.append(m)
    outputs = []
    for m, out in zip(psbt.outputs, tx.vout):
        m = m.copy()
        m.set(F.PSBT_OUT_AMOUNT, b"", out.value.to_bytes(8, "little"))
        m.set(F.PSBT_OUT_SCRIPT, b"", out.script_pubkey.data)
        outputs.append(m)
    return Psbt.parse(Psbt(2, g, inputs, outputs).serialize())

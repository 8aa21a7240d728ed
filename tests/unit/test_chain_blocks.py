"""Pure block assembly (`coldsign.chain.blocks`): heights, subsidy, merkle roots, witness
commitment, timestamps, proof of work and the block wire format.

Whether Bitcoin Core accepts the blocks is tested in tests/e2e/test_regtest_chain.py; here the
pieces are checked against fixed facts (Core's regtest genesis block, BIP34's height format,
BIP141's commitment layout) and against each other.
"""

from __future__ import annotations

import hashlib

import pytest

from coldsign.chain import blocks as B

# Bitcoin Core's regtest genesis block (chainparams.cpp, CRegTestParams:
# CreateGenesisBlock(1296688602, 2, 0x207fffff, 1, 50 * COIN); its hash and merkle root are the
# asserted hashGenesisBlock and hashMerkleRoot there).
REGTEST_GENESIS_HEX = (
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac7"
    "2c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4adae5494dffff7f200200000001010000000100000000000000"
    "00000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d6573"
    "2030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c"
    "6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6"
    "a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac"
    "00000000")
REGTEST_GENESIS_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
GENESIS_MERKLE_DISPLAY = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
P2WPKH = bytes.fromhex("0014" + "33" * 20)


def sha256d(data: bytes) -> bytes:
    """Bitcoin's double SHA-256, written here independently of the code under test."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def test_regtest_genesis_parses_hashes_and_round_trips():
    raw = bytes.fromhex(REGTEST_GENESIS_HEX)
    block = B.RegtestBlock.parse(raw)
    assert block.hash == REGTEST_GENESIS_HASH
    assert (block.timestamp, block.nonce, block.bits, block.version) == (1296688602, 2, 0x207FFFFF, 1)
    assert block.merkle[::-1].hex() == GENESIS_MERKLE_DISPLAY
    assert B.merkle_root([B.txid_internal(block.coinbase)]) == block.merkle
    assert block.serialize() == raw
    assert int.from_bytes(sha256d(block.header()), "little") <= B.target_of(block.bits)


@pytest.mark.parametrize("raw, message", [
    (bytes.fromhex(REGTEST_GENESIS_HEX) + b"\x00", "unexpected bytes after the last transaction"),
    (bytes.fromhex(REGTEST_GENESIS_HEX)[:-3], "malformed block transactions"),
    (bytes.fromhex(REGTEST_GENESIS_HEX)[:80], "a block is at least 81 bytes, got 80"),
    (bytes.fromhex(REGTEST_GENESIS_HEX)[:80] + b"\x00", "this one claims 0"),
])
def test_parse_refuses_malformed_blocks(raw, message):
    with pytest.raises(ValueError, match=message):
        B.RegtestBlock.parse(raw)


@pytest.mark.parametrize("height, expected", [
    (1, "51"), (16, "60"), (17, "0111"), (127, "017f"), (128, "028000"), (255, "02ff00"),
    (256, "020001"), (32767, "02ff7f"), (32768, "03008000"),
    (227836, "03fc7903"),  # mainnet's first BIP34 block: height 0x0379fc little-endian
])
def test_bip34_height_push_is_core_cscript_serialization(height, expected):
    assert B.bip34_height_push(height).hex() == expected


def test_coinbase_script_sig_meets_core_length_rule_and_starts_with_height():
    for height in (1, 16, 17, 1000, 10**6):
        sig = B.coinbase_script_sig(height)
        assert 2 <= len(sig) <= 100
        assert sig.startswith(B.bip34_height_push(height))


@pytest.mark.parametrize("height, subsidy", [
    (0, 50 * B.COIN), (149, 50 * B.COIN), (150, 25 * B.COIN), (299, 25 * B.COIN),
    (300, 1_250_000_000), (150 * 32, 1), (150 * 33, 0), (150 * 64, 0),
])
def test_regtest_subsidy_halves_every_150_blocks(height, subsidy):
    assert B.block_subsidy(height) == subsidy


def test_merkle_root_duplicates_the_last_hash_of_an_odd_level():
    a, b, c = (bytes([n]) * 32 for n in (1, 2, 3))
    assert B.merkle_root([a]) == a
    assert B.merkle_root([a, b]) == sha256d(a + b)
    assert B.merkle_root([a, b, c]) == sha256d(sha256d(a + b) + sha256d(c + c))
    with pytest.raises(ValueError, match="at least one leaf"):
        B.merkle_root([])


def test_witness_commitment_layout_is_bip141():
    root = bytes(range(32))
    script = B.witness_commitment_script(root)
    assert len(script) == 38
    assert script[:6].hex() == "6a24aa21a9ed"
    assert script[6:] == sha256d(root + bytes(32))


@pytest.mark.parametrize("times, now, expected", [
    ([100], 50, 101),                       # below the median: one second above it
    ([100], 500, 500),                      # now is above: now
    (list(range(1, 12)), 0, 7),             # median of 1..11 is 6
    (list(range(1, 30)), 0, 25),            # only the last 11 (19..29) count: median 24
    ([5, 1, 9, 3, 7], 0, 6),                # unsorted times: median 5
])
def test_next_timestamp_is_above_median_time_past(times, now, expected):
    assert B.next_timestamp(times, now) == expected


def test_assembled_block_pays_subsidy_plus_fees_commits_witness_and_meets_target():
    prev = bytes.fromhex(REGTEST_GENESIS_HASH)[::-1]
    block = B.assemble_block(prev_hash=prev, height=151, timestamp=1_700_000_000,
                             payout_script=P2WPKH, fees=1234)
    raw = block.serialize()
    again = B.RegtestBlock.parse(raw)
    assert again.serialize() == raw and again.hash == block.hash
    cb = again.coinbase
    assert cb.vin[0].script_sig.data.startswith(B.bip34_height_push(151))
    assert cb.vout[0].value == 25 * B.COIN + 1234
    assert cb.vout[0].script_pubkey.data == P2WPKH
    assert cb.vout[1].value == 0
    assert cb.vout[1].script_pubkey.data == B.witness_commitment_script(B.witness_root(again.transactions))
    assert cb.vin[0].witness.items == [bytes(32)]
    assert again.prev_hash == prev
    assert again.merkle == B.merkle_root([B.txid_internal(cb)])
    assert int.from_bytes(sha256d(again.header()), "little") <= B.target_of(B.REGTEST_BITS)


def test_block_without_witness_commitment_has_plain_coinbase():
    block = B.assemble_block(prev_hash=bytes(32), height=5, timestamp=1, payout_script=P2WPKH,
                             witness_commitment=False)
    assert len(block.coinbase.vout) == 1
    assert block.coinbase.vin[0].witness.items == []


def test_seal_recomputes_merkle_root_and_proof_of_work_after_tampering():
    block = B.assemble_block(prev_hash=bytes(32), height=5, timestamp=1, payout_script=P2WPKH)
    old_merkle = block.merkle
    block.coinbase.vout[0].value -= 1
    block.seal()
    assert block.merkle != old_merkle
    assert block.merkle == B.merkle_root([B.txid_internal(block.coinbase)])
    assert int.from_bytes(sha256d(block.header()), "little") <= B.target_of(block.bits)


def test_negative_fees_are_refused():
    with pytest.raises(ValueError, match="fee total is never negative"):
        B.assemble_block(prev_hash=bytes(32), height=5, timestamp=1, payout_script=P2WPKH,
                         fees=-1)

"""Hard limits on untrusted input, in one place (after python-tuf's config dataclass).

Every reader of outside data checks its size against one of these before parsing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # A 2,000-input segwit PSBT carrying every previous transaction is ~5 MB; 16 MiB leaves room
    # for large legacy previous transactions without letting a hostile file exhaust memory.
    psbt_max_bytes: int = 16 * 1024 * 1024
    psbt_max_inputs: int = 10_000
    psbt_max_outputs: int = 10_000
    # One key-value entry of a PSBT map (a previous transaction is the largest legitimate one).
    psbt_max_value_bytes: int = 4_000_000
    psbt_max_map_entries: int = 1_000
    # One key of a PSBT map: the longest legitimate one is a taproot control block (4,130 bytes).
    psbt_max_key_bytes: int = 8_192
    transaction_max_bytes: int = 4_000_000
    descriptor_max_chars: int = 10_000
    multisig_max_keys: int = 15
    mnemonic_file_max_bytes: int = 4_096
    wallet_file_max_bytes: int = 1_000_000
    # Key ceremony files: typed dice rolls, an encrypted keystore, the custodians' roster, and the
    # wallet setup files other coordinators write (BSMS records, Coldcard/Sparrow multisig files).
    dice_file_max_bytes: int = 64 * 1024
    share_file_max_bytes: int = 4_096          # a 256-bit SLIP-39 share is 33 words, under 300 bytes
    keystore_file_max_bytes: int = 64 * 1024
    roster_file_max_bytes: int = 1_000_000
    wallet_setup_file_max_bytes: int = 64 * 1024
    # QR transport: the largest message a receiver assembles (also what a sender agrees to send),
    # UR fragments of one message, frames read before giving up, and the scanned media.
    qr_message_max_bytes: int = 4_000_000
    qr_max_fragments: int = 10_000
    qr_max_frames: int = 100_000
    qr_text_line_max_chars: int = 6_000_000
    qr_image_file_max_bytes: int = 64 * 1024 * 1024
    qr_frame_max_pixels: int = 7680 * 4320
    # Policy engine: a policy file is a few KiB (64 KiB is room for hundreds of rules); a request
    # bundle carries the PSBT in base64 (4/3 of psbt_max_bytes) plus the request and its approvals.
    policy_file_max_bytes: int = 64 * 1024
    request_bundle_max_bytes: int = (16 * 1024 * 1024 + 2) // 3 * 4 + 256 * 1024
    # How far above the highest index used by the PSBT's inputs a change index may claim to be.
    change_index_max_gap: int = 1_000


LIMITS = Limits()

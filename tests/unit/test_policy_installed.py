"""The installed policy is checked every time it is read: the home folder is not trusted.

`load_installed` re-checks that installed.toml is the digest installed.json records and that the
signatures recorded there still make the admin quorum of the policy that authorised it (the previous
version from the archive, or the policy itself for the first install). Each way of swapping, forging
or deleting the files is refused with VerificationFailed (exit 5) and its code; the normal install,
rotation and torn-install healing still load.

Policies and keys as in test_policy_document.py: tests/data/policy treasury.toml (v1, admins 2 of
alice, bob, dave) and treasury-v2-rotated.toml (v2: bob -> erin, dave -> frank); identity keys
derived for real from seeds of entropy 0x01..0x06 * 16.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldsign.errors import VerificationFailed
from coldsign.keys.identity import IdentityKey
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from coldsign.policy.document import parse_policy, policy_digest
from coldsign.policy.installed import install, installed_policy, load_installed
from coldsign.policy.signatures import PolicySignature, sign_policy

DATA = Path(__file__).parent.parent / "data" / "policy"
V1 = (DATA / "treasury.toml").read_text()
V2 = (DATA / "treasury-v2-rotated.toml").read_text()
V3 = V2.replace("version = 2", "version = 3", 1)
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
HINT = "someone changed the policy folder: restore it from the signer's backup, or install the signed policy " \
       "again in a fresh home"


@cache
def key(name: str) -> IdentityKey:
    from embit import bip39

    words = bip39.mnemonic_from_bytes(bytes([PEOPLE.index(name) + 1]) * 16)
    return IdentityKey.from_seed(SeedKey.from_mnemonic(Secret(words)), 0)


def sigs(text: str, *names: str) -> list[tuple[str, PolicySignature]]:
    policy = parse_policy(text)
    return [(f"{n}.sig.json", sign_policy(policy, key(n))) for n in names]


def digest_of(text: str) -> str:
    return policy_digest(parse_policy(text)).hex()


def record_of(home: Path) -> dict:
    return json.loads((home / "policy" / "installed.json").read_text())


def write_record(home: Path, record: dict) -> None:
    (home / "policy" / "installed.json").write_text(json.dumps(record, indent=2) + "\n")


def recorded(text: str, *names: str) -> list[dict]:
    """The "signatures" entries install writes for `names` signing `text`."""
    return [dict(sig.to_json(), file=source) for source, sig in sigs(text, *names)]


def refused(home: Path) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as caught:
        load_installed(home)
    assert caught.value.exit_status == 5
    return caught.value


@pytest.fixture()
def v1_home(tmp_path) -> Path:
    install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=True, now=NOW)
    return tmp_path


@pytest.fixture()
def v2_home(v1_home) -> Path:
    install(v1_home, V2.encode(), sigs(V2, "bob", "dave"), first=False, now=NOW)
    return v1_home


# ------------------------------------------------------------------ what still works

def test_install_then_load_and_each_rotation_load(tmp_path):
    assert load_installed(tmp_path) is None                        # nothing at all: no policy
    install(tmp_path, V1.encode(), sigs(V1, "alice", "bob"), first=True, now=NOW)
    found = load_installed(tmp_path)
    assert (found.policy.version, found.digest.hex()) == (1, digest_of(V1))
    install(tmp_path, V2.encode(), sigs(V2, "bob", "dave"), first=False, now=NOW)   # the old quorum rotates
    assert installed_policy(tmp_path).approver_by_key(key("erin").public_key).name == "erin"
    install(tmp_path, V3.encode(), sigs(V3, "erin", "frank"), first=False, now=NOW)  # now the new keys count
    found = load_installed(tmp_path)
    assert (found.policy.version, found.record["previous"]) == (3, {"digest": digest_of(V2), "version": 2})


def test_a_torn_install_still_heals_from_the_archive(v2_home):
    folder = v2_home / "policy"
    (folder / "installed.toml").write_text(V1)                    # crash after the record: the old text
    assert installed_policy(v2_home).version == 2
    (folder / "installed.toml").unlink()                          # or no text at all
    assert installed_policy(v2_home).version == 2
    # a crash between the archive copy and the record of the next install leaves a later copy: fine
    (folder / "archive" / f"v3-{digest_of(V3)[:16]}.toml").write_text(V3)
    assert installed_policy(v2_home).version == 2


# ------------------------------------------------------------------ what is refused

def test_a_swapped_installed_toml_is_refused(v1_home):
    folder = v1_home / "policy"
    edited = V1.replace('max_per_tx = "5 BTC"', 'max_per_tx = "50 BTC"', 1)
    (folder / "installed.toml").write_text(edited)
    err = refused(v1_home)
    assert (err.code, err.message, err.where) == ("policy-tampered",
                                                  "the installed policy does not match the digest its record names",
                                                  str(folder / "installed.toml"))
    assert err.hint == HINT
    (folder / "installed.toml").write_text("this is not TOML [")                  # nor one that does not parse
    assert refused(v1_home).code == "policy-tampered"


def test_a_forged_signature_in_the_record_is_refused(v1_home):
    record = record_of(v1_home)
    alice, bob = record["signatures"]
    bob["signature"] = alice["signature"]                          # bob's entry with alice's signature bytes
    write_record(v1_home, record)
    err = refused(v1_home)
    assert err.code == "policy-tampered"
    assert err.message == ("the signatures recorded for the installed policy do not make the admin quorum that "
                           'had to authorise it: 2 of the approvers holding "admin" in the policy itself (first '
                           "install); counted: alice")
    assert err.details == [{"code": "signature-counts", "message": "alice.sig.json: counts"},
                           {"code": "signature-ignored",
                            "message": "bob.sig.json: the signature does not verify (damaged or forged)"}]


def test_a_self_made_policy_with_its_own_record_is_refused(v1_home):
    """Both files swapped: V2's text, recorded as a first install signed by its own admins erin and
    frank (a quorum of V2 itself). The archive still holds v1, so it was not the first install."""
    folder = v1_home / "policy"
    (folder / "installed.toml").write_text(V2)
    record = dict(record_of(v1_home), digest=digest_of(V2), version=2, signatures=recorded(V2, "erin", "frank"),
                  archive=f"archive/v2-{digest_of(V2)[:16]}.toml")
    write_record(v1_home, record)
    err = refused(v1_home)
    assert (err.code, err.message) == ("policy-tampered",
                                       "the record says v2 was the first policy installed, but the archive holds "
                                       f"other versions up to it (v1-{digest_of(V1)[:16]}.toml)")
    # the same at version 1 (a second "v1" next to the real one in the archive)
    evil = V2.replace("version = 2", "version = 1", 1)
    (folder / "installed.toml").write_text(evil)
    write_record(v1_home, dict(record, digest=digest_of(evil), version=1, signatures=recorded(evil, "erin", "frank"),
                               archive=f"archive/v1-{digest_of(evil)[:16]}.toml"))
    assert refused(v1_home).code == "policy-tampered"


def test_a_v2_signed_only_by_the_v2_keys_is_refused(v2_home):
    record = record_of(v2_home)
    write_record(v2_home, dict(record, signatures=recorded(V2, "erin", "frank")))
    err = refused(v2_home)
    assert err.code == "policy-tampered"
    assert err.message == ("the signatures recorded for the installed policy do not make the admin quorum that "
                           'had to authorise it: 2 of the approvers holding "admin" in the previous version '
                           '"treasury" v1; counted: nobody')
    assert [d["code"] for d in err.details] == ["signature-ignored", "signature-ignored"]
    assert "which the installed policy \"treasury\" v1 does not name" in err.details[0]["message"]
    # one old admin plus one new key is still not a quorum of v1
    write_record(v2_home, dict(record, signatures=recorded(V2, "bob", "erin")))
    assert refused(v2_home).message.endswith("counted: bob")


def test_a_v2_whose_previous_version_is_gone_or_made_up_is_refused(v2_home):
    folder = v2_home / "policy"
    record = record_of(v2_home)
    archived = folder / f"archive/v1-{digest_of(V1)[:16]}.toml"
    archived.unlink()
    err = refused(v2_home)
    assert (err.code, err.where) == ("policy-tampered", str(archived))
    assert err.message == (f"the previous version the record names (v1, digest {digest_of(V1)[:16]}…) is not in "
                           f"the archive as archive/v1-{digest_of(V1)[:16]}.toml, so nobody can tell whose admins "
                           "authorised the installed policy")
    # another v1 put in its place: its digest is not the one the record names
    archived.write_text(V1.replace('max_per_tx = "5 BTC"', 'max_per_tx = "50 BTC"', 1))
    assert refused(v2_home).code == "policy-tampered"
    archived.write_text(V1)
    assert installed_policy(v2_home).version == 2                 # the real one put back: fine again
    write_record(v2_home, dict(record, previous={"digest": digest_of(V2), "version": 2}))
    err = refused(v2_home)                                        # "authorised by itself" as its own previous
    assert err.message == ("the previous version in the archive (v2, regtest) cannot have authorised the installed "
                           "v2 (regtest)")


def test_a_deleted_record_is_refused_not_read_as_no_policy(v1_home):
    folder = v1_home / "policy"
    (folder / "installed.json").unlink()
    err = refused(v1_home)
    assert (err.code, err.message) == ("policy-record-missing", "installed.toml is there but its record "
                                       "installed.json is missing: the installed policy cannot be checked")
    (folder / "installed.toml").unlink()                          # both gone, the archive still there
    err = refused(v1_home)
    assert (err.code, err.message) == ("policy-record-missing", "the archive holds installed policies "
                                       f"(v1-{digest_of(V1)[:16]}.toml) but the record installed.json is missing")
    with pytest.raises(VerificationFailed):                       # and no new "first" install over it
        install(v1_home, V2.encode(), sigs(V2, "erin", "frank"), first=True, now=NOW)


@pytest.mark.parametrize("damage, what", [
    (lambda r: "[1, 2", "not JSON"),
    (lambda r: [r], "not a JSON object"),
    (lambda r: dict(r, digest="AB" * 32), '"digest" is not 64 lower-case hex digits'),
    (lambda r: dict(r, version="1"), '"version" is not a whole number'),
    (lambda r: {k: v for k, v in r.items() if k != "previous"}, '"previous" is neither null nor {"digest", "version"}'),
    (lambda r: dict(r, signatures={}), '"signatures" is not a list'),
    (lambda r: dict(r, archive="../../elsewhere.toml"), '"archive" is not an archive/v<version>-<digest prefix>.toml '
                                                        "name"),
])
def test_a_damaged_record_is_refused(v1_home, damage, what):
    record = damage(record_of(v1_home))
    (v1_home / "policy" / "installed.json").write_text(record if isinstance(record, str) else json.dumps(record))
    err = refused(v1_home)
    assert (err.code, err.message) == ("policy-tampered", f"the installed policy record is damaged: {what}")


def test_a_damaged_signature_entry_or_a_wrong_version_is_refused(v1_home):
    record = record_of(v1_home)
    write_record(v1_home, dict(record, signatures=[dict(record["signatures"][0], signer="zz")]))
    err = refused(v1_home)
    assert (err.code, err.message) == ("policy-tampered", "signature 1 in the installed policy record is damaged: "
                                                          "signer must be 64 lower-case hex digits")
    write_record(v1_home, dict(record, version=9))
    assert refused(v1_home).message == "the record says version 9 but the installed policy is version 1"


def test_the_cli_refuses_a_tampered_policy_with_exit_5(v1_home):
    from coldsign.cli.main import app

    (v1_home / "policy" / "installed.toml").write_text(V1.replace('max_per_tx = "5 BTC"', 'max_per_tx = "50 BTC"'))
    result = CliRunner().invoke(app, ["--home", str(v1_home), "policy", "show", "--json"])
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"]["code"] == "policy-tampered"

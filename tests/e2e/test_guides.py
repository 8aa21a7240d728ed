"""The ceremony guides are executable: every `coldsign` command in ceremony-guides/*.md runs, in order.

How: `guides_runner` extracts the fenced ```coldsign blocks (markup in ceremony-guides/README.md) of the
five guides in their fixed order (key generation, withdrawal, policy change and key rotation, disaster
recovery, audit) and runs each command in-process through `coldsign.cli.main.app`, on the embedded
regtest chain, with one temporary home folder per machine (three signers, a replacement signer, the
coordinator, the auditor). Values one command prints (a fingerprint, a PSBT id, an identity key) are
captured for later commands; `# expect` lines check what the people check aloud. A command that fails,
no longer exists, or prints something else than the guide says fails the test with the guide file,
line and command. ```coldsign check blocks (camera variants) are parsed against the real command tree.

The extractor itself is tested on small guides written here, so that a broken extractor cannot pass by
finding nothing.
"""

from __future__ import annotations

import time

import pytest

import guides_runner as G


def test_every_guide_has_runnable_commands_and_known_placeholders(tmp_path):
    guides = G.extract_all()
    for name, steps in guides.items():
        commands = [s for s in steps if isinstance(s, G.Command) and s.mode != "check"]
        assert len(commands) >= 5, f"ceremony-guides/{name}: only {len(commands)} runnable commands"
    fixed = set(G.fixed_values(tmp_path))
    problems = G.known_placeholders([s for steps in guides.values() for s in steps], fixed)
    assert problems == []


def test_the_guides_run_on_the_embedded_chain(tmp_path):
    guides = G.extract_all()
    rehearsal = G.Rehearsal(tmp_path)
    started = time.monotonic()
    for steps in guides.values():
        for step in steps:
            rehearsal.run(step)
    assert rehearsal.ran >= 60
    # The withdrawal reached the chain and the auditor's verdict is in the report.
    assert rehearsal.values["w1-txid"] == rehearsal.values["w1-broadcast-txid"]
    report = (tmp_path / "transfer" / "audit-report.md").read_text()
    assert rehearsal.values["w1-txid"] in report
    assert time.monotonic() - started < 120


# --- the extractor on guides written here -------------------------------------------------------

def write_guide(tmp_path, text: str):
    path = tmp_path / "guide.md"
    path.write_text(text)
    return path


def test_extractor_reads_commands_directives_continuations_and_files(tmp_path):
    path = write_guide(tmp_path, """# A guide

Prose with `coldsign key list` inline is not run.

```coldsign
# a comment for people
coldsign --home <alice-home> key new --words 24 \\
    --keystore alice
# capture alice-fingerprint = .fingerprint
# expect .words = 24
coldsign --home <alice-home> key list
# expect exit 4
```

```sh
coldsign not run
```

```toml file=<transfer>/p.toml
key = "<alice-fingerprint>"
```

```coldsign check
coldsign qr scan --camera 0 --out x
```
""")
    steps = G.extract(path)
    first, second, policy, camera = steps
    assert (first.line, first.text) == (7, "coldsign --home <alice-home> key new --words 24 --keystore alice")
    assert first.captures == (("alice-fingerprint", ".fingerprint"),)
    assert first.expects == ((".words", "24"),)
    assert first.wants_json and first.exit_code == 0
    assert (second.line, second.exit_code, second.wants_json) == (11, 4, False)
    assert isinstance(policy, G.FileBlock) and policy.target == "<transfer>/p.toml"
    assert policy.content == 'key = "<alice-fingerprint>"\n'
    assert (camera.mode, camera.line) == ("check", 24)
    assert G.known_placeholders(steps, {"alice-home", "transfer"}) == []
    assert G.known_placeholders(steps[2:], {"transfer"}) == [
        "ceremony-guides/guide.md:19: unknown placeholder(s) ['alice-fingerprint']"]


@pytest.mark.parametrize(("block", "message"), [
    ("```coldsign\nls -l\n```\n", "guide.md:2: a coldsign block holds only `coldsign ...` commands and # comments, "
                                  "not 'ls -l'"),
    ("```coldsign\n# capture x = .y\n```\n", "guide.md:2: a directive needs a command before it"),
    ("```coldsign\ncoldsign key list\n# capture X = y\n```\n", "guide.md:3: cannot read the directive '# capture X = y'"),
    ("```coldsign later\ncoldsign key list\n```\n", "guide.md:1: unknown coldsign block attributes ['later']"),
    ("```coldsign\ncoldsign key list \\\n```\n", "guide.md:2: a continued command runs off the end of its block"),
    ("```coldsign\ncoldsign key list\n", "guide.md:1: code block is never closed"),
])
def test_extractor_refuses_markup_it_cannot_read(tmp_path, block, message):
    with pytest.raises(G.GuideFormatError) as caught:
        G.extract(write_guide(tmp_path, block))
    assert str(caught.value).startswith(message)


def test_a_guide_file_outside_the_order_is_an_error(tmp_path):
    for name in G.GUIDE_ORDER:
        (tmp_path / name).write_text("```coldsign\ncoldsign key list\n```\n")
    (tmp_path / "README.md").write_text("```coldsign\ncoldsign nothing\n```\n")
    assert list(G.extract_all(tmp_path)) == list(G.GUIDE_ORDER)   # the README is documentation
    (tmp_path / "new-procedure.md").write_text("")
    with pytest.raises(G.GuideFormatError, match=r"guides not in the runner's order: \['new-procedure.md'\]"):
        G.extract_all(tmp_path)


def run_one(tmp_path, text: str):
    rehearsal = G.Rehearsal(tmp_path / "run")
    for step in G.extract(write_guide(tmp_path, text)):
        rehearsal.run(step)
    return rehearsal


def test_runner_fails_naming_the_line_of_a_command_that_no_longer_exists(tmp_path):
    with pytest.raises(AssertionError) as caught:
        run_one(tmp_path, "```coldsign\ncoldsign --home <alice-home> key list\ncoldsign key frobnicate\n```\n")
    assert str(caught.value).startswith("ceremony-guides/guide.md:3: the guide's command no longer exists in "
                                        "coldsign:\n  coldsign key frobnicate")
    with pytest.raises(AssertionError, match=r"guide.md:2: the guide's command no longer exists"):
        run_one(tmp_path, "```coldsign\ncoldsign key list --frobnicate\n```\n")


def test_runner_fails_on_a_wrong_exit_code_or_a_wrong_value(tmp_path):
    with pytest.raises(AssertionError) as caught:
        run_one(tmp_path, "```coldsign\ncoldsign key roster <transfer>/missing.json\n```\n")
    assert str(caught.value).startswith("ceremony-guides/guide.md:2: exit 3, the guide expects 0:")
    rehearsal = run_one(tmp_path, "```coldsign\ncoldsign key roster <transfer>/missing.json\n# expect exit 3\n"
                                  "# expect .error.code = not-found\n```\n")
    assert rehearsal.ran == 1
    with pytest.raises(AssertionError) as caught:
        run_one(tmp_path, "```coldsign\ncoldsign --home <alice-home> key list\n# expect .keystores = 1\n```\n")
    assert "guide.md:2: " in str(caught.value)


def test_runner_captures_values_and_writes_file_blocks(tmp_path):
    rehearsal = run_one(tmp_path, """
```coldsign
coldsign --home <alice-home> key new --words 12 --dice-file <alice-dice-file> --mnemonic-out <alice-ramdisk>/w.txt
# capture fp = .fingerprint
```

```text file=<transfer>/note.txt
fingerprint <fp> on <network>
```

```coldsign
coldsign key split --mnemonic-file <alice-ramdisk>/w.txt --threshold 2 --shares 3 --out-dir <alice-shares>
# expect .fingerprint = <fp>
```

```coldsign check
coldsign --home <alice-home> qr scan --camera 0 --out <transfer>/x.psbt
```
""")
    fp = rehearsal.values["fp"]
    assert len(fp) == 8
    assert (tmp_path / "run" / "transfer" / "note.txt").read_text() == f"fingerprint {fp} on regtest\n"
    assert sorted(p.name for p in (tmp_path / "run" / "alice-ramdisk" / "shares").iterdir()) == [
        "share-1-1.txt", "share-1-2.txt", "share-1-3.txt"]


def test_check_blocks_fail_on_options_that_do_not_exist(tmp_path):
    with pytest.raises(AssertionError, match=r"guide.md:2: `coldsign qr scan --webcam 0 --out x` does not parse"):
        run_one(tmp_path, "```coldsign check\ncoldsign qr scan --webcam 0 --out x\n```\n")
    with pytest.raises(AssertionError, match=r"guide.md:2: `coldsign qr scanner --out x` does not parse: No such command 'scanner'"):
        run_one(tmp_path, "```coldsign check\ncoldsign qr scanner --out x\n```\n")

"""Secret masking: pure tests of SecretMasker (no database)."""

from __future__ import annotations

import random
import string

import pytest

from meshlogs.writer.masking import MASK, SecretMasker


def test_plain_occurrences_are_masked() -> None:
    m = SecretMasker(["token123"])
    assert m.mask("auth token123 ok; again token123") == "auth *** ok; again ***"


def test_text_without_secrets_is_returned_unchanged() -> None:
    m = SecretMasker(["token123"])
    text = "nothing to see"
    assert m.mask(text) is text
    assert SecretMasker().mask(text) is text


def test_secret_split_by_ansi_codes_is_masked_with_the_codes() -> None:
    m = SecretMasker(["token123"])
    assert m.mask("tok\x1b[1men123") == "***"
    assert m.mask("x tok\x1b[1m\x1b[31men1\x1b[0m23 y") == "x *** y"


def test_ansi_codes_around_a_secret_are_kept() -> None:
    m = SecretMasker(["token123"])
    assert m.mask("\x1b[31mtoken123\x1b[0m done") == "\x1b[31m***\x1b[0m done"


def test_osc_hyperlink_inside_secret_is_replaced() -> None:
    m = SecretMasker(["hunter22"])
    text = "pw: hun\x1b]8;;https://example.com\x07ter22\x1b]8;;\x07!"
    assert m.mask(text) == "pw: ***\x1b]8;;\x07!"


def test_secret_literally_present_is_masked_even_if_it_looks_like_an_escape() -> None:
    # "\x1b[t" parses as a CSI sequence; the raw text still contains the whole secret.
    m = SecretMasker(["token123"])
    assert m.mask("\x1b[token123") == "\x1b[***"


def test_overlapping_secrets_are_merged() -> None:
    m = SecretMasker(["abcdef", "defghi"])
    assert m.mask("xabcdefghix") == "x***x"
    m = SecretMasker(["abcd", "bcdefg"])
    assert m.mask("abcdefg") == "***"


def test_contained_secret_and_longest_match() -> None:
    m = SecretMasker(["pass", "password123"])
    assert m.mask("password123 pass password") == "*** *** ***word"


def test_adjacent_secrets_become_one_mask() -> None:
    m = SecretMasker(["aaaa1", "bbbb2"])
    assert m.mask("aaaa1bbbb2") == "***"


@pytest.mark.parametrize("secret", ["a.b*c+d?", "(x|y)[z]", "\\d+$^", "{1,2}\\"])
def test_regex_metacharacters_are_literal(secret: str) -> None:
    m = SecretMasker([secret])
    assert m.mask(f"<{secret}>") == "<***>"
    assert m.mask("a-b-c-d and xz and 12 and 1") == "a-b-c-d and xz and 12 and 1"


def test_short_secrets_are_ignored() -> None:
    m = SecretMasker()
    assert m.add("abc") is False
    assert m.add("") is False
    assert not m
    assert m.mask("abc abc") == "abc abc"
    assert m.add("abcd") is True
    assert m.mask("abc abcd") == "abc ***"


def test_min_length_cannot_let_the_mask_grow_a_line() -> None:
    with pytest.raises(ValueError):
        SecretMasker(min_length=len(MASK))


def test_multiline_secret_is_masked_whole_and_by_line() -> None:
    pem = "-----BEGIN KEY-----\nMIIBVwIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----"
    m = SecretMasker([pem])
    assert m.mask(f"key={pem}") == "key=***"
    assert m.mask("line: hkiG9w0BAQEFAASC") == "line: ***"


def test_secret_with_nul_matches_cleaned_text() -> None:
    m = SecretMasker(["ab\x00cdef"])
    assert m.mask("x ab\ufffdcdef") == "x ***"


def test_many_secrets_mask_correctly() -> None:
    rng = random.Random(7)
    secrets = [
        "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(6, 30))) for _ in range(500)
    ]
    m = SecretMasker(secrets)
    assert len(m) == len(set(secrets))
    for s in secrets[::25]:
        assert m.mask(f"[{s}]") == "[***]"
    assert m.mask("~ nothing here ~") == "~ nothing here ~"


def test_add_many_and_non_str() -> None:
    m = SecretMasker()
    assert m.add_many(["12345", "ab", "67890"]) == 2
    with pytest.raises(TypeError):
        m.add(12345)  # type: ignore[arg-type]

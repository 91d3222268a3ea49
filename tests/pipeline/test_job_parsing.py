"""Records are read with pydantic's JSON parser; what is wrong with a bad one is said as before."""

from __future__ import annotations

import json

import pytest

from schemas.errors import JobError
from schemas.jobs import decode_object, parse_job


@pytest.mark.parametrize("raw", [b"this is not json", b'{"a": 1,}', b'{"a": ', b"\xef\xbb\xbf{}"])
def test_broken_json_is_described_in_json_loads_words(raw: bytes) -> None:
    try:
        json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        expected = f"record is not JSON: {exc}"
    with pytest.raises(JobError) as caught:
        decode_object(raw)
    assert str(caught.value) == expected


def test_bytes_that_are_not_utf8_and_values_that_are_not_objects() -> None:
    with pytest.raises(JobError, match="its bytes are not UTF-8 text"):
        decode_object(b"\x00\x9f\xff\xfe\x80binary")
    with pytest.raises(JobError, match="record is JSON list, expected an object"):
        decode_object(b"[1, 2]")
    with pytest.raises(JobError, match="record is JSON NoneType, expected an object"):
        decode_object(b"null")


def test_a_job_reads_the_same_as_through_json_loads() -> None:
    raw = '{"id": "j1", "input": "caf\\u00e9 \\ud83d\\ude00 ünï", "labels": ["a", "b"], "x": 1e3}'
    assert decode_object(raw.encode()) == json.loads(raw)
    job = parse_job(raw.encode(), "classify")
    assert job.input == "café 😀 ünï" and job.kind == "classify"

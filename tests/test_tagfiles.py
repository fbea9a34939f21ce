"""The sidecar tag-file format: naming, reading any encoding, and writing without losing a user's tags."""


from hypothesis import given
from hypothesis import strategies as st

from common.tagfiles import decode_tag_bytes, detect_separator, merge_into_tag_file, parse_tags


def test_tags_one_per_line_with_crlf_bom_spaces_blanks_and_repeats():
    text = "\ufeff cat \r\n\r\nblack cat\r\ncat\r\n  outdoors\r\n"
    assert parse_tags(text) == ["cat", "black cat", "outdoors"]


def test_tags_comma_separated_on_one_line_and_mixed():
    assert parse_tags("1girl, solo,  long hair,") == ["1girl", "solo", "long hair"]
    assert parse_tags("a, b\nc\n") == ["a", "b", "c"]


def test_empty_or_blank_tag_file_means_no_tags():
    assert parse_tags("") == []
    assert parse_tags("\n \n\t\n") == []


def test_non_utf8_tag_files_are_decoded_by_fallback():
    assert decode_tag_bytes("café\n".encode("cp1252")) == "café\n"
    assert decode_tag_bytes("naïve\n".encode("utf-16")) == "naïve\n"
    assert decode_tag_bytes("\ufeffcat\n".encode("utf-8")) == "cat\n"
    # 0x81 is undefined in Windows-1252, so Latin-1, which maps every byte, takes over
    assert decode_tag_bytes(b"\x81 caf\xe9") == "\x81 café"


@given(st.text())
def test_parsed_tags_are_clean_unique_and_stable(text):
    tags = parse_tags(text)
    assert len(tags) == len(set(tags))
    assert all(tag and tag == tag.strip() and "," not in tag and "\n" not in tag for tag in tags)
    assert parse_tags("\n".join(tags)) == tags  # writing tags one per line and reading them back is lossless


def test_merging_keeps_existing_tags_order_and_comma_style(tmp_path):
    lines = tmp_path / "a.jpg.txt"
    lines.write_text("b\na\n")
    assert merge_into_tag_file(lines, ["a", "c"])
    assert lines.read_text() == "b\na\nc\n"
    assert not merge_into_tag_file(lines, ["c"])  # nothing new: the file is left alone
    commas = tmp_path / "b.txt"
    commas.write_text("x, y")
    merge_into_tag_file(commas, ["z"])
    assert commas.read_text() == "x, y, z"
    assert detect_separator("x, y") == ", " and detect_separator("x\ny") == "\n"


@given(st.binary(max_size=400))
def test_any_bytes_decode_to_tags_without_an_error(raw):
    tags = parse_tags(decode_tag_bytes(raw))
    assert all(tag and tag == tag.strip() and "," not in tag and "\n" not in tag for tag in tags)
    assert len(tags) == len(set(tags))

"""The unaccepted table's bitmap read in pieces gives the runs and counts of the whole table."""

from __future__ import annotations

import random

import pytest

from lazyaccept.formats import unaccepted_bitmap as ub
from lazyaccept.formats.unaccepted import HEADER_SIZE, build_unaccepted_table, new_table, parse_unaccepted_table


def _bitmaps() -> list[bytes]:
    rng = random.Random(3)
    out = [b"", b"\x00", b"\xff", b"\x55" * 9, b"\xaa" * 9, b"\xff" * 5 + b"\x00" + b"\xff" * 3]
    for _ in range(300):
        n = rng.randint(1, 40)
        if rng.random() < 0.5:  # long runs across pieces
            out.append(bytes(rng.choice([0, 255, rng.randint(0, 255)]) for _ in range(n)))
        else:
            out.append(bytes(rng.randint(0, 255) for _ in range(n)))
    return out


@pytest.mark.parametrize("piece", [1, 2, 3, 8, ub.PIECE_BYTES])
def test_runs_and_counts_match_the_decoded_table(monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    monkeypatch.setattr(ub, "PIECE_BYTES", piece)
    for bitmap in _bitmaps():
        if not bitmap:
            assert list(ub.bitmap_runs(bitmap)) == [] and ub.count_bits_and_runs(bitmap) == (0, 0)
            continue
        table = new_table(0, len(bitmap))
        data = build_unaccepted_table(table)[:HEADER_SIZE] + bitmap
        t = parse_unaccepted_table(data)
        unit = t.unit_size
        runs = list(ub.bitmap_runs(bitmap))
        assert [(a * unit, b * unit) for a, b in runs] == t.unaccepted_ranges()
        assert ub.count_bits_and_runs(bitmap) == (t.unaccepted_bytes() // unit, len(runs))


def test_the_header_is_checked_as_the_table_parser_checks_it() -> None:
    good = build_unaccepted_table(new_table(1 << 32, 4))
    assert ub.parse_header(good) == ub.TableHeader(1, 2 << 20, 1 << 32, 4)
    for bad in (good[:10], good[:-1], b"\x02" + good[1:]):
        with pytest.raises(Exception) as a:
            parse_unaccepted_table(bad)
        with pytest.raises(Exception) as b:
            ub.parse_header(bad)
        assert str(a.value) == str(b.value)

"""CSV formula injection: cells are neutralised on write and restored exactly on read."""

import io

from hypothesis import given
from hypothesis import strategies as st

from crmkit.plugin import csv_writer, neutralise_cell, restore_cell


def test_formula_cells_are_neutralised_and_numbers_left_alone():
    assert neutralise_cell('=HYPERLINK("http://x")').startswith("'=")
    assert neutralise_cell("@SUM(1+1)") == "'@SUM(1+1)"
    assert neutralise_cell("+86 138 0013 8000") == "'+86 138 0013 8000"
    assert neutralise_cell("\tcmd") == "'\tcmd"
    assert neutralise_cell("-12.50") == "-12.50"
    assert neutralise_cell("Li Na") == "Li Na"
    assert neutralise_cell(42) == 42


@given(st.text())
def test_restore_undoes_neutralise_exactly(text):
    assert restore_cell(neutralise_cell(text)) == text


@given(st.text())
def test_no_written_cell_starts_a_formula(text):
    buffer = io.StringIO()
    csv_writer(buffer).writerow([text])
    cell = neutralise_cell(text)
    assert not cell.startswith(("=", "@", "\t", "\r")) or cell == text == ""
    assert buffer.getvalue()

"""Tables line up with wide (Chinese) characters; JSON and CSV keep them as they are."""

import csv
import io

from crmkit.cli.output import render


def test_table_columns_line_up_with_wide_characters():
    rows = [{"name": "李娜", "region": "华东"}, {"name": "Li Na", "region": "East"}]
    lines = render(rows, "table").splitlines()
    # the second column starts in the same terminal column on every line (CJK is 2 wide)
    values = ["region", "华东", "East"]
    starts = [
        _display_width(line[: line.index(value)])
        for line, value in zip([lines[0], *lines[2:]], values, strict=True)
    ]
    assert starts == [starts[0]] * 3, lines


def _display_width(text):
    return sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in text)


def test_long_wide_values_are_clipped_to_the_column_width():
    rows = [{"title": "退款政策" * 20}]
    line = render(rows, "table").splitlines()[2]
    assert line.endswith("…")
    assert _display_width(line) <= 40


def test_section_data_lines_align_values_with_wide_keys():
    from crmkit.cli.page360 import data_lines

    lines = data_lines({"会员等级": "金卡", "tier": "gold", "城市_区": "上海 浦东"}, indent=2)
    assert lines == ["  会员等级: 金卡", "  tier:     gold", "  城市 区:  上海 浦东"]
    # every value starts in the same terminal column (a CJK character is two wide)
    starts = {_display_width(line[: line.index(value)]) for line, value in
              zip(lines, ["金卡", "gold", "上海"], strict=True)}  # fmt: skip
    assert starts == {12}


def test_csv_cells_that_spreadsheets_would_run_are_neutralised():
    from crmkit.plugin import restore_cell

    rows = [
        {"name": '=HYPERLINK("http://evil","x")', "id": "@SUM(1+1)", "n": -12.5, "t": "-x"},
        {"name": "+33 1 23", "id": "\tTAB", "n": 3, "t": "'=already"},
    ]
    text = render(rows, "csv")
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["name", "id", "n", "t"]
    assert parsed[1] == ['\'=HYPERLINK("http://evil","x")', "'@SUM(1+1)", "-12.5", "'-x"]
    assert parsed[2] == ["'+33 1 23", "'\tTAB", "3", "''=already"]
    # and each cell reads back exactly
    assert [restore_cell(c) for c in parsed[2]] == ["+33 1 23", "\tTAB", "3", "'=already"]

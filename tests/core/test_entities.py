"""Entities validate on construction: money is Decimal, times are aware, attributes typed."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import AttributeDefinition, Customer, Order, ValidationError
from crmkit.core.entities import to_money

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_money_refuses_float():
    with pytest.raises(ValidationError, match="amount must be a Decimal"):
        Order(customer_id=1, occurred_at=NOW, amount=12.5)


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9
    )
)
def test_money_accepts_decimal_text_exactly(value):
    assert to_money(str(value)) == value


@pytest.mark.parametrize("bad", ["abc", "", "1.2.3", "NaN", "Infinity"])
def test_money_refuses_non_numbers(bad):
    with pytest.raises(ValidationError):
        to_money(bad)


def test_naive_datetime_refused_with_fix():
    with pytest.raises(ValidationError, match="no time zone; give an offset"):
        Order(customer_id=1, occurred_at=dt.datetime(2026, 1, 1), amount="1")


def test_customer_choices_are_checked():
    with pytest.raises(ValidationError, match="kind 'vip' is not valid; use one of: end"):
        Customer(name="A", kind="vip")
    with pytest.raises(ValidationError, match="email 'nope' is not an e-mail"):
        Customer(name="A", email="nope")
    with pytest.raises(ValidationError, match="name must not be empty"):
        Customer(name="  ")


@pytest.mark.parametrize(
    ("type_", "raw", "expected"),
    [
        ("integer", "42", 42),
        ("decimal", "3.10", Decimal("3.10")),
        ("date", "2020-02-29", dt.date(2020, 2, 29)),
        ("boolean", "yes", True),
        ("boolean", "0", False),
        ("string", 7, "7"),
    ],
)
def test_attribute_conversion(type_, raw, expected):
    assert AttributeDefinition("x", type_).convert(raw) == expected


@pytest.mark.parametrize(
    ("type_", "raw"),
    [("integer", "4.5"), ("integer", 4.5), ("date", "2021-02-30"), ("boolean", "maybe")],
)
def test_attribute_conversion_errors_name_the_attribute(type_, raw):
    with pytest.raises(ValidationError, match=f"attribute 'x' expects {type_}"):
        AttributeDefinition("x", type_).convert(raw)


def test_choice_attribute():
    size = AttributeDefinition("size", "choice", choices=("small", "large"))
    assert size.convert("small") == "small"
    with pytest.raises(ValidationError, match="use one of: small, large"):
        size.convert("medium")
    with pytest.raises(ValidationError, match="no choices"):
        AttributeDefinition("size", "choice")


def test_required_attribute():
    with pytest.raises(ValidationError, match="'x' is required"):
        AttributeDefinition("x", "string", required=True).convert("")


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9
    )
)
def test_money_scale_keeps_value_and_uses_two_to_four_places(value):
    from crmkit.core.types import money_scale

    scaled = money_scale(value)
    assert scaled == value
    assert 2 <= -scaled.as_tuple().exponent <= 4

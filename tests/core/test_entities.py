"""Entities validate on construction: money is Decimal, times are aware, attributes typed."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmkit import AttributeDefinition, Customer, Interaction, Order, ValidationError
from crmkit.core.entities import OrderLine, to_money

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


# -- the one money format ------------------------------------------------------------

plain_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=4, min_value=-(10**13), max_value=10**13
)


@given(plain_decimals, st.sampled_from(["", " ", "  "]), st.booleans())
def test_money_text_round_trips_in_both_separators(value, pad, comma):
    text = f"{value:f}"
    if comma:
        text = text.replace(".", ",")
    assert to_money(pad + text + pad, decimal_comma=comma) == value


@given(st.text(max_size=12))
def test_money_text_is_read_whole_or_refused(text):
    """Whatever the text, it is either the number it shows or refused: never a number made
    by dropping characters (the old parser read "1,50" as 150)."""
    try:
        value = to_money(text)
    except ValidationError as exc:
        assert "is not a decimal number" in str(exc)
        return
    stripped = text.strip()
    assert set(stripped) <= set("0123456789.+-") and stripped.count(".") <= 1
    assert value == Decimal(stripped)


@given(st.integers(min_value=1, max_value=999), st.integers(min_value=0, max_value=999))
def test_thousands_separators_are_refused_not_guessed(high, low):
    for text in (f"{high},{low:03d}", f"{high},{low:03d}.50", f"{high} {low:03d}"):
        with pytest.raises(ValidationError, match="no thousands separators"):
            to_money(text)
    with pytest.raises(ValidationError, match="a comma before the decimals"):
        to_money(f"{high}.{low:03d},50", decimal_comma=True)


@given(st.one_of(st.text(alphabet="0123456789.,+- eE_", max_size=20), plain_decimals.map(str)))
def test_the_importers_fast_money_path_agrees_with_the_general_one(text):
    from crmkit.transfer.convert import _amount, _money_limit, _money_text
    from crmkit.transfer.results import RowError

    def general(value):
        amount = _amount(value, "amount")
        _money_limit(amount, "amount")
        return amount

    outcomes = []
    for parse in (lambda value: _money_text(value, "amount"), general):
        try:
            outcomes.append(("ok", parse(text)))
        except RowError as exc:
            outcomes.append(("refused", exc.column))
    assert outcomes[0] == outcomes[1]


def test_order_amounts_in_the_one_format():
    assert Order(customer_id=1, occurred_at=NOW, amount="1234.50").amount == Decimal("1234.50")
    for bad in ("1,50", "1.234,50", "1e3", "١٢"):
        with pytest.raises(ValidationError, match="is not a decimal number"):
            Order(customer_id=1, occurred_at=NOW, amount=bad)


def test_an_entity_changed_by_assignment_is_checked_before_it_is_stored(crm):
    """Entities check their fields when made, not on assignment; a service taking an
    entity checks it again, so a bad value set by assignment is refused and nothing stored."""
    customer = Customer(name="Ada")
    customer.email = "not an address"  # no check here (attrs' setters are off)
    with pytest.raises(ValidationError, match="email"):
        crm.customers.add(customer)
    assert crm.customers.count() == 0

    ada = crm.customers.add(Customer(name="Ada"))
    interaction = Interaction(
        customer_id=ada.id, channel="phone", occurred_at=dt.datetime.now(dt.UTC)
    )
    interaction.occurred_at = dt.datetime(2024, 1, 1)  # naive
    with pytest.raises(ValidationError, match="time zone"):
        crm.interactions.log_many([interaction])
    order = Order(customer_id=ada.id, occurred_at=dt.datetime.now(dt.UTC), amount="10.00")
    order.amount = 10.5  # a float: money is Decimal
    with pytest.raises(ValidationError, match="amount must be a Decimal"):
        crm.orders.add(order)
    order.amount = Decimal("10.00")
    order.lines.append(OrderLine(product="tea", price="10.00"))
    order.lines[0].price = 10.0
    with pytest.raises(ValidationError, match="price must be a Decimal"):
        crm.orders.add(order)
    order.lines[0].price = "10.00"  # text is converted, as when made
    assert crm.orders.add(order).lines[0].price == Decimal("10.00")
    assert len(crm.orders.list(customer_id=ada.id)) == 1
    assert crm.interactions.list(customer_id=ada.id) == []

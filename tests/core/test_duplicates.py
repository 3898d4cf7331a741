"""Likely duplicates: normalised keys, the warning at creation, the listing at scale."""

from __future__ import annotations

import logging

import pytest

from crmkit.core import duplicates
from crmkit.core.duplicates import Evidence, email_key, name_keys, phone_key, region_for_timezone


def same_name(a: str, b: str) -> bool:
    return bool(name_keys(a) & name_keys(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("李娜", "Li Na"),
        ("李娜", "Na Li"),
        ("Li Na", "LI  NA"),
        ("李娜", "李 娜"),
        ("王小明", "Wang Xiaoming"),
        ("王小明", "Xiaoming Wang"),
        ("王小明", "Wang Xiao Ming"),
        ("王小明", "Xiao-Ming Wang"),
        ("曾小贤", "Zeng Xiaoxian"),  # the surname reading, not the usual ceng
        ("单田芳", "Shan Tianfang"),
        ("欧阳娜娜", "Ouyang Nana"),  # a two-character surname
        ("吕布", "Lü Bu"),
        ("Zoë Müller", "Muller, Zoe"),
        ("ACME Ltd.", "acme ltd"),
    ],
)
def test_names_match_across_scripts_and_word_order(a: str, b: str) -> None:
    assert same_name(a, b), (name_keys(a), name_keys(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [("Li Na", "Lina"), ("李娜", "李明"), ("Li Na", "Li Nan"), ("王小明", "Wang Xiaohong")],
)
def test_different_names_do_not_match(a: str, b: str) -> None:
    assert not same_name(a, b), (name_keys(a), name_keys(b))


def test_email_is_trimmed_and_lower_cased_only() -> None:
    assert email_key("  Li.Na@Example.CN ") == "li.na@example.cn"
    # no provider rules: dots and +tags are different mailboxes at most providers
    assert email_key("li.na@gmail.com") != email_key("lina@gmail.com")
    assert email_key("li+crm@gmail.com") != email_key("li@gmail.com")
    assert email_key("  ") is None


def test_phone_is_e164_in_the_default_region() -> None:
    forms = ["+86 138 0013 8000", "138-0013-8000", "0086 13800138000", "(138) 0013 8000"]
    assert {phone_key(f, "CN") for f in forms} == {"+8613800138000"}
    assert phone_key("+49 30 1234567", "CN") == "+49301234567"
    assert phone_key("12345", "CN") is None  # too short to say anything
    assert phone_key("call me", "CN") is None
    # no default region: a number without a country code is compared by its digits
    assert duplicates.phone_keys("138 0013 8000", None) & duplicates.phone_keys(
        "+86 138 0013 8000", None
    )


def test_the_default_region_is_the_country_of_the_configured_time_zone() -> None:
    assert region_for_timezone("Asia/Shanghai") == "CN"
    assert region_for_timezone("Europe/Berlin") == "DE"
    assert region_for_timezone("UTC") is None


def test_adding_a_likely_duplicate_warns_naming_the_candidate_and_the_evidence(
    make_crm, caplog
) -> None:
    crm = make_crm(timezone="Asia/Shanghai")
    first = crm.customers.add(name="李娜", email="li@example.cn", phone="138 0013 8000")
    crm.customers.add(name="Zhang Wei", email="zhang@example.cn")
    with caplog.at_level(logging.WARNING, logger="crmkit.core.duplicates"):
        second = crm.customers.add(name="Li Na", email="LI@Example.CN")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"customer {second.id} (Li Na) may be a duplicate of customer {first.id} (李娜: "
        "email li@example.cn, name li na); compare them with 'crmkit customer show', and "
        f"merge with 'crmkit customer merge {first.id} {second.id}' if they are the same"
    ]
    found = crm.customers.find_duplicates_of(second)
    assert [(c.customer_id, c.evidence) for c in found] == [
        (first.id, (Evidence("email", "li@example.cn"), Evidence("name", "li na")))
    ]
    # an entity not yet stored can be checked too, and a phone in another form matches
    probe = crm.customers.build({"name": "Someone Else", "phone": "+86 138-0013-8000"})
    assert [(c.customer_id, c.evidence) for c in crm.customers.find_duplicates_of(probe)] == [
        (first.id, (Evidence("phone", "+8613800138000"),))
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crmkit.core.duplicates"):
        crm.customers.add(name="Wang Fang", email="wang@example.cn")
    assert not caplog.records


def test_erased_and_merged_customers_are_no_candidates(make_crm) -> None:
    crm = make_crm()
    erased = crm.customers.add(name="Li Na", email="li@example.cn")
    crm.customers.erase(erased.id)
    kept = crm.customers.add(name="李娜")
    merged = crm.customers.add(name="Li Na")
    crm.customers.merge(kept.id, merged.id, prefer={"name": "kept"})
    probe = crm.customers.build({"name": "Na Li", "email": "li@example.cn"})
    assert [c.customer_id for c in crm.customers.find_duplicates_of(probe)] == [kept.id]
    assert [(p.first_id, p.second_id) for p in crm.customers.duplicates().pairs] == []


def test_listing_pairs_2000_customers_through_the_database(make_crm, monkeypatch) -> None:
    crm = make_crm(timezone="Asia/Shanghai")
    crm.customers.add_many(
        {
            "name": f"Person {i:04d}",
            "email": f"p{i}@example.com",
            "phone": f"+86 139 0000 {i:04d}",
        }
        for i in range(1940)
    )
    # a switchboard number shared by 55 customers: crowded, not 1,485 pairs
    crm.customers.add_many({"name": f"Branch {i}", "phone": "+86 10 6552 9988"} for i in range(55))
    li = crm.customers.add(name="李娜", email="li@example.cn")
    li2 = crm.customers.add(name="Na Li", email=" LI@example.CN".strip())
    wang = crm.customers.add(name="王小明")
    wang2 = crm.customers.add(name="Xiaoming Wang", phone="139-0000-0042")
    person42 = crm.customers.list(text="Person 0042")[0]
    assert crm.customers.count() == 1999

    computed = []
    keys_of = duplicates.keys_of

    def counting(customer, region):
        computed.append(customer.id)
        return keys_of(customer, region)

    monkeypatch.setattr(duplicates, "keys_of", counting)
    report = crm.customers.duplicates()
    # every customer's keys computed once: linear, the pairing is the database's
    assert sorted(computed) == sorted(c.id for c in crm.customers.iterate())
    assert [(p.first_id, p.second_id, p.evidence) for p in report.pairs] == [
        (li.id, li2.id, (Evidence("email", "li@example.cn"), Evidence("name", "li na"))),
        (person42.id, wang2.id, (Evidence("phone", "+8613900000042"),)),
        (wang.id, wang2.id, (Evidence("name", "wang xiaoming"),)),
    ]
    assert report.pairs[0].first_name == "李娜" and report.pairs[0].second_name == "Na Li"
    assert [(k.kind, k.value, k.count) for k in report.crowded] == [("phone", "+861065529988", 55)]
    everything = crm.customers.duplicates(max_block=100)
    assert len(everything.pairs) == 3 + 55 * 54 // 2 and not everything.crowded

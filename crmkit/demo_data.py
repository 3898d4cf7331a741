"""A realistic, seeded demo data set (``crmkit demo``), reusable from Python::

    import random, crmkit
    from crmkit.demo_data import generate

    crm = crmkit.open("sqlite:///demo.db", upgrade=True)
    summary = generate(crm, customers=2000, seed=42)
    print("\\n".join(summary.lines()))

What it builds, all from one ``random.Random(seed)``:

* staff with the sales workflow's roles (sales reps, technical support, cost
  accounting, a sales manager);
* customers across Chinese provinces and cities (with Chinese names) and
  other regions, persons and organisations, industries, occupations, ages,
  relationship owners, some e-mail/phone, marketing consent for about a third;
* two years of orders whose value is heavy-tailed per customer (a Pareto
  "propensity" times lognormal order values), so the 80/20 shape appears:
  the top 20 % of customers bring most of the revenue;
* interactions on every channel;
* deals in the sales workflow, moved stage by stage by staff holding the
  stage's role, some won, some lost, some still open;
* then each enabled plugin's ``crmkit_generate_demo_data(crm=crm, rng=rng)``.

The same seed gives the same customers, orders and totals (dates are laid
out backwards from ``today``).
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import func, select

from crmkit.core import tables as t
from crmkit.core.entities import CHANNELS, Interaction, Order, OrderLine
from crmkit.errors import Conflict, CrmError

CENT = Decimal("0.01")
#: shape of the customers' spending propensity (smaller: more skewed)
PARETO_ALPHA = 1.5

# (region, province, [cities]) — China by region, then a few other countries
CHINA = [
    ("华东", "上海", ["上海"]),
    ("华东", "江苏", ["南京", "苏州", "无锡"]),
    ("华东", "浙江", ["杭州", "宁波", "温州"]),
    ("华东", "山东", ["济南", "青岛"]),
    ("华北", "北京", ["北京"]),
    ("华北", "天津", ["天津"]),
    ("华北", "河北", ["石家庄", "唐山"]),
    ("华南", "广东", ["广州", "深圳", "东莞", "佛山"]),
    ("华南", "福建", ["福州", "厦门"]),
    ("华中", "湖北", ["武汉", "宜昌"]),
    ("华中", "湖南", ["长沙"]),
    ("西南", "四川", ["成都", "绵阳"]),
    ("西南", "重庆", ["重庆"]),
    ("西北", "陕西", ["西安"]),
    ("东北", "辽宁", ["沈阳", "大连"]),
]
ABROAD = [
    ("Europe", "Île-de-France", ["Paris"]),
    ("Europe", "Bavaria", ["Munich", "Nuremberg"]),
    ("Europe", "England", ["London", "Manchester"]),
    ("North America", "California", ["San Francisco", "Los Angeles"]),
    ("North America", "Ontario", ["Toronto"]),
    ("Asia Pacific", "Tokyo", ["Tokyo"]),
    ("Asia Pacific", "Singapore", ["Singapore"]),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红建国志强晓东海燕"
PINYIN = ["wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou"]
FIRST = ["Anna", "Ben", "Claire", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas",
         "Kenji", "Laura", "Marco", "Nina", "Oliver", "Priya", "Sofia", "Tom", "Yuki",
         "Zoe"]  # fmt: skip
LAST = ["Martin", "Schmidt", "Smith", "Dubois", "Rossi", "Tanaka", "Brown", "Müller", "García",
        "Nguyen", "Kowalski", "Andersen", "Silva", "Novak", "O'Brien", "Lefèvre"]  # fmt: skip
COMPANY_SUFFIX_CN = [
    "科技有限公司",
    "贸易有限公司",
    "制造股份有限公司",
    "物流有限公司",
    "餐饮管理有限公司",
]
COMPANY_SUFFIX = ["GmbH", "Ltd", "SA", "Inc.", "BV"]
INDUSTRIES = ["retail", "manufacturing", "finance", "healthcare", "education", "logistics",
              "hospitality", "software", "energy", "agriculture"]  # fmt: skip
OCCUPATIONS = ["engineer", "teacher", "doctor", "accountant", "designer", "shop owner",
               "civil servant", "student", "nurse", "manager", "farmer", "driver"]  # fmt: skip
PRODUCTS = [
    ("Tea set", "home"), ("Rice cooker", "appliances"), ("Running shoes", "sports"),
    ("Laptop", "electronics"), ("Phone case", "electronics"), ("Silk scarf", "fashion"),
    ("Office chair", "furniture"), ("Coffee beans", "food"), ("Service plan", "services"),
    ("Industrial pump", "equipment"),
]  # fmt: skip
SUBJECTS = {
    "phone": ["Asked about delivery time", "Follow-up call", "Price question"],
    "email": ["Quote requested", "Invoice copy", "Newsletter reply"],
    "letter": ["Contract documents", "Warranty claim by post"],
    "web": ["Contact form: product question", "Online order help"],
    "chat": ["Chat: size advice", "Chat: order status"],
    "visit": ["Visited the showroom", "On-site meeting"],
    "social": ["WeChat message", "Comment on our post"],
    "call-centre": ["Hotline: complaint about delay", "Hotline: return request"],
}
STAFF = [
    ("wang.lei", "王磊", ["sales_rep"], "sales"),
    ("li.na", "李娜", ["sales_rep"], "sales"),
    ("anna.schmidt", "Anna Schmidt", ["sales_rep"], "sales"),
    ("zhao.min", "赵敏", ["technical_support"], "support"),
    ("chen.jie", "陈杰", ["cost_accounting"], "finance"),
    ("liu.yang", "刘洋", ["sales_manager", "sales_rep"], "sales"),
    ("admin", "Administrator", ["admin"], "it"),
]


@attrs.define
class DemoSummary:
    customers: int = 0
    organisations: int = 0
    orders: int = 0
    revenue: Decimal = Decimal(0)
    interactions: int = 0
    deals: int = 0
    deals_won: int = 0
    deals_lost: int = 0
    staff: int = 0
    consents: int = 0
    top20_share: Decimal = Decimal(0)  # share of paid revenue from the top 20 % of customers
    plugin_lines: list[str] = attrs.field(factory=list)

    def lines(self) -> list[str]:
        return [
            f"staff: {self.staff} (sales reps, technical support, cost accounting, a manager)",
            f"customers: {self.customers} ({self.organisations} organisations) across Chinese "
            "provinces and abroad; marketing consent from "
            f"{self.consents}",
            f"orders: {self.orders} over two years, revenue {self.revenue:,.2f}; the top 20% of "
            f"customers bring {self.top20_share:.0%} of it",
            f"interactions: {self.interactions} on every channel ({', '.join(CHANNELS)})",
            f"deals in the sales workflow: {self.deals} ({self.deals_won} won, "
            f"{self.deals_lost} lost, {self.deals - self.deals_won - self.deals_lost} open)",
            *self.plugin_lines,
        ]


def _chinese_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _customer(rng: random.Random, n: int, today: dt.date, owners: list[str]) -> dict[str, Any]:
    china = rng.random() < 0.8
    region, province, cities = rng.choice(CHINA if china else ABROAD)
    city = rng.choice(cities)
    organisation = rng.random() < 0.15
    if organisation:
        if china:
            name = city + rng.choice("华盛鑫源恒达联兴") + rng.choice(COMPANY_SUFFIX_CN)
        else:
            name = (
                f"{rng.choice(LAST)} {rng.choice(INDUSTRIES).title()} {rng.choice(COMPANY_SUFFIX)}"
            )
    else:
        name = _chinese_name(rng) if china else f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    data: dict[str, Any] = {
        "external_id": f"C{n:05d}",
        "name": name,
        "type": "organisation" if organisation else "person",
        "kind": "enterprise" if organisation else rng.choice(["end"] * 9 + ["channel"]),
        "status": rng.choice(["active"] * 8 + ["inactive", "prospect"]),
        "region": region,
        "province": province,
        "city": city,
        "industry": rng.choice(INDUSTRIES),
        "owner": rng.choice(owners),
    }
    if rng.random() < 0.7:
        handle = rng.choice(PINYIN) if china else data["name"].split()[0].lower()
        data["email"] = f"{handle}.{n}@example.{'cn' if china else 'com'}"
    if rng.random() < 0.6:
        data["phone"] = (
            f"+86 1{rng.randrange(30, 99)}{rng.randrange(10**8):08d}"
            if china
            else f"+{rng.choice([33, 49, 44, 1])} {rng.randrange(10**9):09d}"
        )
    if not organisation:
        age = min(85, max(18, int(rng.gauss(40, 13))))
        data["occupation"] = rng.choice(OCCUPATIONS)
        data["birth_date"] = today - dt.timedelta(days=age * 365 + rng.randrange(365))
    if rng.random() < 0.35:
        data["consents"] = {"marketing": True, "contact": True}
    return data


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 2))).quantize(CENT)


def generate(
    crm: Any,
    *,
    customers: int = 2000,
    seed: int = 42,
    today: dt.date | None = None,
    plugins: bool = True,
) -> DemoSummary:
    """Build the demo set in ``crm`` (which must have no customers yet); return a summary."""
    _check_empty(crm, customers)
    rng = random.Random(seed)
    zone = zoneinfo.ZoneInfo(crm.config.timezone)
    today = today or dt.datetime.now(zone).date()
    summary = DemoSummary()
    reps = _add_staff(crm, summary)
    rows, ids = _add_customers(crm, rng, customers, today, reps, summary)
    start = dt.datetime.combine(today - dt.timedelta(days=730), dt.time(), tzinfo=zone)
    _add_orders(crm, rng, rows, ids, start, summary)
    _add_interactions(crm, rng, rows, ids, start, summary)

    # deals through the sales workflow, moved by staff holding each stage's role
    if "sales" in crm.workflow_definitions:
        _deals(crm, rng, rows, ids, start, summary)

    if plugins:
        for line in crm.call("crmkit_generate_demo_data", crm=crm, rng=rng):
            if line:
                summary.plugin_lines.append(str(line))
    return summary


def _check_empty(crm: Any, customers: int) -> None:
    """Refuse a demo of no customers, or into a database that has customers."""
    if customers < 1:
        raise CrmError("the demo needs at least 1 customer; use --customers 2000")
    with crm.reading() as connection:
        present = connection.scalar(select(func.count()).select_from(t.customers))
    if present:
        raise Conflict(
            f"the database already has {present} customers; the demo needs an empty database "
            "(use --database sqlite:///demo.db for a new one)"
        )


def _add_staff(crm: Any, summary: DemoSummary) -> list[str]:
    """Add the demo staff (those not there yet); return the sales reps' usernames."""
    for username, name, roles, department in STAFF:
        if crm.staff.find(username) is None:
            crm.staff.add(username, name, roles=roles, department=department,
                          email=f"{username}@example.com")  # fmt: skip
        summary.staff += 1
    return [s[0] for s in STAFF if "sales_rep" in s[2]]


def _add_customers(
    crm: Any,
    rng: random.Random,
    customers: int,
    today: dt.date,
    reps: list[str],
    summary: DemoSummary,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Add ``customers`` customers; return their rows and their ids by external id."""
    rows = [_customer(rng, n, today, reps) for n in range(1, customers + 1)]
    crm.customers.add_many(rows)
    summary.customers = len(rows)
    summary.organisations = sum(r["type"] == "organisation" for r in rows)
    summary.consents = sum("consents" in r for r in rows)
    ids = crm.customers.ids_by_external_id(r["external_id"] for r in rows)
    return rows, ids


def _add_orders(
    crm: Any,
    rng: random.Random,
    rows: list[dict[str, Any]],
    ids: dict[str, int],
    start: dt.datetime,
    summary: DemoSummary,
) -> None:
    """Two years of orders: a heavy-tailed propensity per customer drives both frequency and
    basket size."""
    currency = crm.config.currency
    revenue_by_customer: dict[int, Decimal] = {}
    orders: list[Order] = []
    number = 0
    for row in rows:
        customer_id = ids[row["external_id"]]
        propensity = rng.paretovariate(PARETO_ALPHA)
        count = max(1, min(60, int(propensity * rng.uniform(0.8, 2.5))))
        scale = 120 * propensity**0.5 * (4 if row["type"] == "organisation" else 1)
        for _ in range(count):
            number += 1
            amount = _money(min(rng.lognormvariate(0, 0.6) * scale, 500_000))
            moment = start + dt.timedelta(
                days=rng.randrange(730), hours=rng.randrange(8, 22), minutes=rng.randrange(60)
            )
            status = rng.choices(["paid", "refunded", "cancelled"], [94, 4, 2])[0]
            product, category = rng.choice(PRODUCTS)
            orders.append(
                Order(
                    customer_id=customer_id,
                    occurred_at=moment,
                    amount=amount,
                    external_id=f"O{number:07d}",
                    cost=_money(float(amount) * rng.uniform(0.45, 0.8)),
                    currency=currency,
                    status=status,
                    channel=rng.choice(["web", "visit", "phone", "chat"]),
                    lines=[OrderLine(product=product, category=category, price=amount)],
                )
            )
            if status == "paid":
                revenue_by_customer[customer_id] = (
                    revenue_by_customer.get(customer_id, Decimal(0)) + amount
                )
        if len(orders) >= 5000:
            summary.orders += crm.orders.add_many(orders).stored
            orders = []
    summary.orders += crm.orders.add_many(orders).stored
    summary.revenue = sum(revenue_by_customer.values(), Decimal(0))
    summary.top20_share = top_share(list(revenue_by_customer.values()), len(rows))


def _add_interactions(
    crm: Any,
    rng: random.Random,
    rows: list[dict[str, Any]],
    ids: dict[str, int],
    start: dt.datetime,
    summary: DemoSummary,
) -> None:
    """One to four interactions per customer; every channel appears."""
    interactions: list[Interaction] = []
    staff_names = [s[0] for s in STAFF]
    for index, row in enumerate(rows):
        for k in range(rng.randrange(1, 5)):
            channel = CHANNELS[(index + k) % len(CHANNELS)] if index < 8 else rng.choice(CHANNELS)
            moment = start + dt.timedelta(days=rng.randrange(730), hours=rng.randrange(8, 20))
            interactions.append(
                Interaction(
                    customer_id=ids[row["external_id"]],
                    channel=channel,
                    occurred_at=moment,
                    direction=rng.choice(["inbound", "inbound", "outbound"]),
                    subject=rng.choice(SUBJECTS[channel]),
                    body="",
                    staff=rng.choice(staff_names),
                )
            )
    summary.interactions = crm.interactions.log_many(interactions)


PATH = ["need_discovery", "presentation", "tender", "negotiation", "contract", "won"]
ACTOR = {
    "need_discovery": "sales_rep",
    "presentation": "technical_support",
    "tender": "cost_accounting",
    "negotiation": "sales_rep",
    "contract": "sales_manager",
}


def _deals(
    crm: Any,
    rng: random.Random,
    rows: list[dict[str, Any]],
    ids: dict[str, int],
    start: dt.datetime,
    summary: DemoSummary,
) -> None:
    by_role: dict[str, list[str]] = {}
    for username, _name, roles, _dept in STAFF:
        for role in roles:
            by_role.setdefault(role, []).append(username)
    count = max(3, min(80, len(rows) // 25))
    latest = start + dt.timedelta(days=730)
    organisations = [r for r in rows if r["type"] == "organisation"] or rows
    for number in range(count):
        row = rng.choice(organisations)
        owner = row["owner"]
        at = start + dt.timedelta(days=rng.randrange(20, 700), hours=rng.randrange(9, 18))
        value = _money(rng.lognormvariate(10, 0.8))
        deal = crm.workflows.start(
            "sales",
            ids[row["external_id"]],
            f"{row['name']}: {rng.choice(PRODUCTS)[0]} order #{number + 1}",
            value=value,
            owner=owner,
            actor=owner,
            at=at,
        )
        summary.deals += 1
        # how far it gets: some stay open, some are lost, about a third are won
        target = rng.choice([1, 2, 3, 4, 5, 5, 5, 5])
        lose = rng.random() < 0.3
        tender = rng.random() < 0.5
        stage = "need_discovery"
        for step in range(target):
            nxt = PATH[PATH.index(stage) + 1]
            if nxt == "tender" and not tender:
                nxt = "negotiation"
            if lose and step == target - 1:
                nxt = "lost"
            role = ACTOR[stage]
            actor = owner if role == "sales_rep" else rng.choice(by_role[role])
            at = min(at + dt.timedelta(days=rng.randrange(2, 20)), latest)
            fields = {"tender_reference": f"T-{number + 1:04d}"} if nxt == "tender" else None
            deal = crm.workflows.move(deal.id, nxt, actor=actor, fields=fields, at=at,
                                      reason="demo")  # fmt: skip
            stage = nxt
            if stage in ("won", "lost"):
                break
        if stage == "won":
            summary.deals_won += 1
        elif stage == "lost":
            summary.deals_lost += 1


def top_share(revenues: list[Decimal], population: int) -> Decimal:
    """Share of total revenue from the top 20 % of ``population`` customers."""
    total = sum(revenues, Decimal(0))
    if not total:
        return Decimal(0)
    top = sorted(revenues, reverse=True)[: max(1, population // 5)]
    return sum(top, Decimal(0)) / total


__all__ = ["DemoSummary", "generate", "top_share"]

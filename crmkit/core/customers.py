"""Customer service: create, read, change, consent, contacts (the 360 view is in
:mod:`crmkit.core.view360`, export and erasure in :mod:`crmkit.core.personal`).

Every public method authorises the current actor (:mod:`crmkit.core.access`): reads need
``customers.read``, writes ``customers.write`` on the customer (own/team scopes: the
customer's owner must be the actor or in their team, else :class:`NotFound`), erasure
``customers.erase``, export ``customers.export``, merge ``customers.merge`` on both
records; lists keep the customers the actor may see. Every write records its audit entry
in its own transaction (``customer.create``, ``customer.update``, ``consent.change``,
``contact.create`` ...). Lookups other parts of crmkit make on the way
(:meth:`require_writable`, :meth:`ids_by_external_id`, :meth:`withdrawn`) check nothing:
the operation calling them has authorised its actor.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from decimal import Decimal
from itertools import groupby
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import (
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from crmkit.core import access, consent, personal, prebuilt, view360
from crmkit.core import contacts as contact_persons
from crmkit.core import tables as t
from crmkit.core.bulk import check_values, chunks, insert_many
from crmkit.core.consent import ConsentChange
from crmkit.core.entities import CONSENT_PURPOSES, Contact, Customer
from crmkit.core.view360 import Customer360
from crmkit.errors import (
    Conflict,
    CrmError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationError,
)

if TYPE_CHECKING:
    from crmkit.core.duplicates import DuplicateCandidate, DuplicateReport
    from crmkit.core.merge import MergeResult
    from crmkit.crm import CRM

log = logging.getLogger(__name__)

#: Columns of ``customers`` a caller may set directly (everything else is custom attributes).
PROFILE_FIELDS = (
    "external_id", "type", "kind", "status", "name", "email", "phone", "address", "region",
    "province", "city", "industry", "occupation", "birth_date", "owner",
)  # fmt: skip


@attrs.define
class BulkResult:
    """What a bulk write stored and what it skipped (nothing is dropped silently)."""

    stored: int = 0
    skipped: list[str] = attrs.field(factory=list)  # external ids already present


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class CustomerService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    # -- conversion -------------------------------------------------------
    def _encode_attributes(
        self, values: Mapping[str, Any], untouched: Collection[str] = ()
    ) -> dict[str, Any]:
        """Attributes as stored; ``untouched`` names values an edit leaves alone: one that
        no longer converts (stored before its attribute was declared) stays as stored."""
        encoded: dict[str, Any] = {}
        definitions = self.crm.attribute_definitions
        for name, value in values.items():
            definition = definitions.get(name)
            if definition is not None:
                try:
                    value = definition.convert(value)
                except ValidationError:
                    if name not in untouched:
                        raise
            elif value is not None and not isinstance(value, str | int | bool):
                value = str(value)
            if value is not None:
                encoded[name] = _json_value(value)
        for name, definition in definitions.items():
            if definition.required and name not in encoded:
                raise ValidationError(f"attribute {name!r} is required", field=name)
        return encoded

    def _decode_attributes(self, values: Mapping[str, Any]) -> dict[str, Any]:
        definitions = self.crm.attribute_definitions
        decoded = {}
        for name, value in (values or {}).items():
            definition = definitions.get(name)
            try:
                decoded[name] = definition.convert(value) if definition else value
            except CrmError:  # declared after the value was stored: keep it as stored
                decoded[name] = value
        return decoded

    def _entity(self, row: Any, consents: dict[str, bool] | None = None) -> Customer:
        # the row's values in Customer's field order, picked by position (a list reads
        # fifty rows: by name, the picking cost as much as building the entities)
        values = prebuilt.picker(row._fields, _ENTITY_COLUMNS)(row)
        return Customer(
            *values[:15],
            self._decode_attributes(values[15]),
            consents or {},
            *values[16:],
        )

    def _row(
        self, customer: Customer, now: dt.datetime, untouched: Collection[str] = ()
    ) -> dict[str, Any]:
        row = {f: getattr(customer, f) for f in PROFILE_FIELDS}
        row["attributes"] = self._encode_attributes(customer.attributes, untouched)
        row["created_at"] = customer.created_at or now
        row["updated_at"] = now
        return row

    @staticmethod
    def build(data: Customer | Mapping[str, Any]) -> Customer:
        """A Customer from an entity or a mapping of profile fields plus attributes."""
        if isinstance(data, Customer):
            return attrs.evolve(data)  # made again: a field set by assignment is checked
        values = dict(data)
        attributes = dict(values.pop("attributes", None) or {})
        consents = dict(values.pop("consents", None) or {})
        for key in list(values):
            if key not in PROFILE_FIELDS:
                attributes[key] = values.pop(key)
        if isinstance(values.get("birth_date"), str) and values["birth_date"]:
            try:
                values["birth_date"] = dt.date.fromisoformat(values["birth_date"])
            except ValueError:
                raise ValidationError(
                    f"birth_date {values['birth_date']!r} is not a date like 1980-04-30",
                    field="birth_date",
                ) from None
        clean = {k: (None if v == "" else v) for k, v in values.items()}
        for required in ("name",):
            if not clean.get(required):
                raise ValidationError(f"{required} is required", field=required)
        for key in ("type", "kind", "status"):
            if clean.get(key) is None:
                clean.pop(key, None)
        return Customer(**clean, attributes=attributes, consents=consents)

    # -- writes -----------------------------------------------------------
    def _owners_for_new(self, customers: list[Customer]) -> list[Customer]:
        """Authorise ``customers.write`` for new customers; with an own/team scope each
        given owner must be the actor or in their team (:class:`Forbidden`), and a customer
        given without an owner becomes the acting staff member's (so they can see it)."""
        scope = access.require(self.crm, "customers.write")
        actor = self.crm.actor
        if scope != "all" and actor.username:
            customers = [c if c.owner else attrs.evolve(c, owner=actor.username) for c in customers]
            allowed = access.visible_owners(self.crm, "customers.write") or frozenset()
            outside = sorted({str(c.owner) for c in customers if c.owner not in allowed})
            if outside:
                raise Forbidden(
                    f"{actor.name} may only add customers owned by "
                    f"{'their team' if scope == 'team' else 'themselves'} "
                    f"(customers.write:{scope}); owner {outside[0]!r} is outside it",
                    permission="customers.write",
                )
        access.authorise(self.crm, "customers.write")  # plugin rules
        return customers

    def _check_new_owner(self, owner: str | None) -> None:
        """A customer given to ``owner`` must stay inside the actor's scope (own/team)."""
        scope = access.require(self.crm, "customers.write")
        if scope == "all":
            return
        allowed = access.visible_owners(self.crm, "customers.write") or frozenset()
        if owner not in allowed:
            raise Forbidden(
                f"{self.crm.actor.name} may only give customers to "
                f"{'their team' if scope == 'team' else 'themselves'} "
                f"(customers.write:{scope}); owner {owner!r} is outside it",
                permission="customers.write",
            )

    def add(
        self,
        customer: Customer | Mapping[str, Any] | None = None,
        /,
        *,
        actor: str | None = None,
        consent_source: str = "create",
        **fields: Any,
    ) -> Customer:
        """Create one customer; returns it with its id. Fires ``crmkit_after_customers_created``.

        Needs ``customers.write``. A staff member holding it at scope ``own`` or ``team``
        may only give an owner inside that scope (else :class:`Forbidden`); a customer
        they add without an owner becomes their own (they could not see it otherwise).
        The local operator and ``all`` scopes leave a missing owner empty. Audited as
        ``customer.create`` with the stored values.

        Consents given with it (``consents={"marketing": True}``) are recorded in the
        consent history with ``consent_source`` as their source. A likely duplicate of a
        stored customer is logged as one warning naming the candidates and the evidence
        (:meth:`find_duplicates_of` returns them).
        """
        entity = self.build(customer if customer is not None else fields)
        [entity] = self._owners_for_new([entity])
        with access.trusted(self.crm):
            result = self._insert(
                [entity], actor=actor, skip_existing=False, consent_source=consent_source
            )
            from crmkit.core import duplicates

            duplicates.flag_new(self.crm, result[0])
        return result[0]

    def add_many(
        self,
        customers: Iterable[Customer | Mapping[str, Any]],
        *,
        batch_size: int = 2000,
        skip_existing: bool = True,
        actor: str | None = None,
        consent_source: str = "create",
    ) -> BulkResult:
        """Create many customers in batches, each batch one transaction and one event.

        With ``skip_existing`` a customer whose ``external_id`` is already stored
        is skipped and listed in the result; otherwise it is a Conflict. Consents given
        with the customers are recorded in the consent history with ``consent_source``
        (an importer passes e.g. ``"import customers.csv"``). Authorised as :meth:`add`
        (each batch's owners); one audit entry per batch (``customer.create_many``: how
        many, the ids), not one per customer.
        """
        result = BulkResult()
        for batch in chunks((self.build(c) for c in customers), batch_size):
            batch = self._owners_for_new(batch)
            with access.trusted(self.crm), self.crm.transaction(actor=actor):
                stored = self._insert(
                    batch,
                    actor=actor,
                    skip_existing=skip_existing,
                    result=result,
                    consent_source=consent_source,
                    audit="batch",
                )
            result.stored += len(stored)
        return result

    def _store_many(
        self, customers: list[Customer], *, consent_source: str = "create"
    ) -> BulkResult:
        """One batch of an import, in the import's transaction: no check, no audit entry
        (the import authorised ``import.run`` once and records one entry for the file)."""
        result = BulkResult()
        stored = self._insert(
            customers,
            actor=None,
            skip_existing=True,
            result=result,
            consent_source=consent_source,
            audit="none",
        )
        result.stored += len(stored)
        return result

    def _insert(
        self,
        batch: list[Customer],
        *,
        actor: str | None,
        skip_existing: bool,
        result: BulkResult | None = None,
        consent_source: str = "create",
        audit: str = "one",
    ) -> list[Customer]:
        with self.crm.transaction(actor=actor) as ctx:
            connection = ctx.connection
            ids = [c.external_id for c in batch if c.external_id]
            if len(set(ids)) != len(ids):
                seen: set[str] = set()
                dupes = sorted({i for i in ids if i in seen or seen.add(i)})
                raise Conflict(f"external_id {dupes[0]!r} appears twice in the same batch")
            existing = set()
            if ids:
                existing = set(
                    connection.scalars(
                        select(t.customers.c.external_id).where(t.customers.c.external_id.in_(ids))
                    )
                )
            if existing and not skip_existing:
                raise Conflict(
                    f"a customer with external_id {sorted(existing)[0]!r} already exists; "
                    "edit it instead, or choose another external_id"
                )
            fresh = [c for c in batch if c.external_id not in existing or not c.external_id]
            if result is not None:
                result.skipped.extend(sorted(existing))
            if not fresh:
                return []
            self.crm.staff.refuse_inactive({c.owner for c in fresh}, "own customers")
            rows = [self._row(c, ctx.now) for c in fresh]
            for row in rows:  # what the database would refuse: one clear error, nothing stored
                check_values(t.customers, row)
            new_ids = insert_many(connection, t.customers, rows)
            stored = []
            consent_rows = []
            for customer, new_id, row in zip(fresh, new_ids, rows, strict=True):
                stored.append(
                    attrs.evolve(
                        customer,
                        id=new_id,
                        created_at=row["created_at"],
                        updated_at=row["updated_at"],
                        attributes=self._decode_attributes(row["attributes"]),
                        version=1,
                    )
                )
                for purpose, granted in customer.consents.items():
                    consent_rows.append(
                        consent.consent_row(new_id, purpose, granted, ctx.now, consent_source)
                    )
            if consent_rows:
                connection.execute(insert(t.consents), consent_rows)
                history = [{**row, "actor": actor or ctx.actor.label} for row in consent_rows]
                connection.execute(insert(t.consent_changes), history)
            self._audit_created(ctx, stored, audit)
            self.crm.fire(ctx, "crmkit_after_customers_created", customers=stored)
            ctx.changes.customers_created.extend(stored)
            return stored

    @staticmethod
    def _audit_created(ctx: Any, stored: list[Customer], how: str) -> None:
        if how == "one":
            for customer in stored:
                ctx.audit(
                    "customer.create",
                    "customer",
                    customer.id,
                    customer_id=customer.id,
                    after=audited_values(customer),
                )
        elif how == "batch" and stored:
            ids = [c.id for c in stored]
            ctx.audit(
                "customer.create_many",
                "customer",
                customer_id=ids[0] if len(ids) == 1 else None,
                changes={"stored": [None, len(ids)], "ids": [None, [min(ids), max(ids)]]},
            )

    def update(
        self,
        customer_id: int,
        /,
        *,
        actor: str | None = None,
        expected_version: int | None = None,
        **changes: Any,
    ) -> Customer:
        """Change profile fields and attributes (``attributes={...}`` merges; None removes).

        Needs ``customers.write`` on the customer, and a new ``owner`` must be inside the
        actor's scope too. Every update bumps the customer's ``version`` (consent and
        contact changes do not: they have their own history); with ``expected_version``
        an edit of a customer whose version differs (someone changed it since it was
        read) raises :class:`PreconditionFailed` and writes nothing, also when two edits
        race (the UPDATE is conditional on the version and its row count checked).
        Audited as ``customer.update`` with the changed fields before and after
        (attributes as ``attributes.<name>``).
        """
        access.require(self.crm, "customers.write")
        with self.crm.transaction(actor=actor) as ctx:
            current = self._lock(ctx, customer_id)
            access.authorise(self.crm, "customers.write", customer_id, owner=current.owner)
            if "owner" in changes and (changes["owner"] or None) != current.owner:
                self._check_new_owner(changes["owner"] or None)
            if expected_version is not None and current.version != expected_version:
                raise PreconditionFailed(
                    f"customer {customer_id} changed since it was read (version "
                    f"{current.version}, not {expected_version}); read it again and redo "
                    "the edit; nothing was changed"
                )
            with access.trusted(self.crm):
                return self._update(ctx, customer_id, changes, current.version)

    def _lock(self, ctx: Any, customer_id: int) -> Any:
        """The customer's row, locked until the transaction ends (PostgreSQL)."""
        query = select(t.customers.c.owner, t.customers.c.version).where(
            t.customers.c.id == customer_id
        )
        if ctx.connection.dialect.name == "postgresql":
            query = query.with_for_update()
        row = ctx.connection.execute(query).first()
        if row is None:
            raise NotFound(
                f"customer {customer_id} not found; list customers with 'crmkit customer list'"
            )
        return row

    def _update(
        self, ctx: Any, customer_id: int, changes: dict[str, Any], version: int
    ) -> Customer:
        before = self.require_writable(customer_id)
        attributes = dict(before.attributes)
        extra = changes.pop("attributes", None) or {}
        for key in list(changes):
            if key not in PROFILE_FIELDS:
                extra[key] = changes.pop(key)
        for key, value in extra.items():
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        if "birth_date" in changes and isinstance(changes["birth_date"], str):
            changes["birth_date"] = self.build(
                {"name": "x", "birth_date": changes["birth_date"]}
            ).birth_date
        after = attrs.evolve(before, **changes, attributes=attributes)  # validates
        if after.owner != before.owner:
            self.crm.staff.refuse_inactive(after.owner, "own customers")
        # a stored value the edit does not touch is not re-validated (an attribute
        # declared after it was stored, e.g. vip=maybe before complaints was enabled)
        row = self._row(after, ctx.now, untouched=set(before.attributes) - set(extra))
        row.pop("created_at")
        check_values(t.customers, row)
        if after.external_id != before.external_id and after.external_id:
            clash = ctx.connection.scalar(
                select(t.customers.c.id).where(t.customers.c.external_id == after.external_id)
            )
            if clash is not None:
                raise Conflict(f"external_id {after.external_id!r} belongs to customer {clash}")
        done = ctx.connection.execute(
            update(t.customers)
            .where(t.customers.c.id == customer_id, t.customers.c.version == version)
            .values({**row, "version": version + 1})
        )
        if done.rowcount != 1:  # changed by another transaction since we read it
            raise PreconditionFailed(
                f"customer {customer_id} changed while this edit ran; read it again and "
                "redo the edit; nothing was changed"
            )
        after = self.get(customer_id)
        ctx.audit(
            "customer.update",
            "customer",
            customer_id,
            customer_id=customer_id,
            before={**audited_values(before), "version": version},
            after={**audited_values(after), "version": version + 1},
        )
        self.crm.fire(ctx, "crmkit_after_customers_updated", customers=[after], previous=[before])
        ctx.changes.customers_updated.append(after)
        return after

    def set_consent(
        self,
        customer_id: int,
        purpose: str,
        granted: bool,
        *,
        source: str | None = None,
        actor: str | None = None,
    ) -> Customer:
        """Record consent (or its withdrawal) for one purpose, e.g. ``marketing``.

        ``consents`` keeps the latest answer per purpose; every call also appends to the
        consent history (:meth:`consent_history`) in the same transaction. Needs
        ``customers.write`` on the customer; audited as ``consent.change``.
        """
        return consent.set_consent(
            self.crm, customer_id, purpose, granted, source=source, actor=actor
        )

    def add_contact(
        self,
        customer_id: int,
        name: str,
        *,
        role: str | None = None,
        email: str | None = None,
        phone: str | None = None,
    ) -> Contact:
        """Add a contact person to an organisation customer (``customers.write`` on it;
        audited as ``contact.create``)."""
        access.require(self.crm, "customers.write")
        with self.crm.transaction() as ctx:
            customer = self.writable_for(customer_id, "customers.write")
            if customer.type != "organisation":
                raise ValidationError(
                    f"customer {customer_id} is a person; contacts belong to organisations"
                )
            contact = Contact(
                customer_id=customer_id, name=name, role=role, email=email, phone=phone
            )
            new_id = ctx.connection.scalar(
                insert(t.contacts).returning(t.contacts.c.id),
                {k: v for k, v in attrs.asdict(contact).items() if k != "id"},
            )
            contact = attrs.evolve(contact, id=new_id)
            ctx.audit(
                "contact.create",
                "contact",
                new_id,
                customer_id=customer_id,
                after=contact_persons.audited(contact),
            )
            return contact

    def update_contact(self, contact_id: int, /, **changes: Any) -> Contact:
        """Change a contact person's name, role, email or phone; refused for an erased or
        merged customer (see :mod:`crmkit.core.contacts`)."""
        return contact_persons.update(self.crm, contact_id, **changes)

    def remove_contact(self, contact_id: int) -> Contact:
        """Remove a contact person (returned); refused for an erased or merged customer."""
        return contact_persons.remove(self.crm, contact_id)

    # -- reads ------------------------------------------------------------
    def get(self, customer_id: int) -> Customer:
        """The customer with this id; :class:`NotFound` when there is none, or when it is
        outside the actor's ``customers.read`` scope (:class:`Forbidden` without it)."""
        access.require(self.crm, "customers.read")
        customer = self._get(customer_id)
        access.authorise(self.crm, "customers.read", customer_id, owner=customer.owner)
        return customer

    def _with_consents(self, rows: list[Any]) -> list[Customer]:
        """Customers from rows of customers joined to their consents (``consent_purpose``,
        ``consent_granted``; a customer's rows are adjacent)."""
        found: list[Customer] = []
        for _, group in groupby(rows, key=attrgetter("id")):
            customer = list(group)
            consents = {
                r.consent_purpose: bool(r.consent_granted) for r in customer if r.consent_purpose
            }
            found.append(self._entity(customer[0], consents))
        return found

    def _get(self, customer_id: int) -> Customer:
        """:meth:`get` without a check (for operations that authorised their actor)."""
        with self.crm.reading() as connection:
            rows = prebuilt.rows(connection, _GET, {"customer_id": customer_id})
        return self._found(customer_id, rows)

    def _found(self, customer_id: int, rows: list[Any]) -> Customer:
        """The customer of rows of :data:`_GET` (or a statement adding columns to it)."""
        if not rows:
            raise NotFound(
                f"customer {customer_id} not found; list customers with 'crmkit customer list'"
            )
        consents = {r.consent_purpose: bool(r.consent_granted) for r in rows if r.consent_purpose}
        return self._entity(rows[0], consents)

    def _get_for_view(self, customer_id: int) -> tuple[Customer, Any]:
        """:meth:`get` (the same checks), for the 360 view: with, from the same statement,
        a row holding the customer's paid-order totals (``paid_orders``, ``revenue``,
        ``last_order``) and whether it has contacts, workflow instances, interactions,
        consent history and audit entries (``has_contacts``, ``has_workflows``,
        ``has_interactions``, ``has_consent_history``, ``has_activity``: its own or a
        merged record's): the view skips reading parts it knows are empty."""
        access.require(self.crm, "customers.read")
        with self.crm.reading() as connection:
            rows = prebuilt.rows(connection, _GET_FOR_VIEW, {"customer_id": customer_id})
        customer = self._found(customer_id, rows)
        access.authorise(self.crm, "customers.read", customer_id, owner=customer.owner)
        return customer, rows[0]

    def require_writable(self, customer_id: int) -> Customer:
        """The customer, if it may take new data; :class:`Conflict` if it was erased or merged.

        The one check every write about a customer goes through, in the core and in
        plugins: an erased person gets no new interactions, orders, cases or points, and
        a record merged into another sends the caller to the record it became. It checks
        no permission: the write calling it has authorised its actor.
        """
        customer = self._get(customer_id)
        reason = personal.refusal(customer_id, customer.erased_at, customer.merged_into)
        if reason:
            raise Conflict(reason)
        return customer

    def writable_for(self, customer_id: int, action: str) -> Customer:
        """The customer, once the actor is authorised for ``action`` on it (out of scope:
        :class:`NotFound`) and it may take new data (:meth:`require_writable`)."""
        customer = self._get(customer_id)
        access.authorise(self.crm, action, customer_id, owner=customer.owner)
        reason = personal.refusal(customer_id, customer.erased_at, customer.merged_into)
        if reason:
            raise Conflict(reason)
        return customer

    def consent_history(
        self, customer_id: int, *, purpose: str | None = None
    ) -> list[ConsentChange]:
        """Every grant and withdrawal of consent by the customer, oldest first.

        Consents given at creation or import and every :meth:`set_consent` are kept
        (purpose, value, time, source, actor); ``purpose`` keeps one purpose's changes.
        An erasure removes the history with the rest of the person's data. Needs
        ``customers.read`` on the customer.
        """
        return consent.history(self.crm, customer_id, purpose=purpose)

    def withdrawn(self, purpose: str, customer_ids: Iterable[int] | None = None) -> set[int]:
        """Ids of customers who withdrew consent for ``purpose`` (among ``customer_ids``).

        Withdrawn means an explicit ``granted = false``; a customer never asked is not in
        the set. Analyses of people (``profiling``) leave these customers out. A helper
        for analyses (ids only): it checks no permission, the analysis does.
        """
        return consent.withdrawn(self.crm, purpose, customer_ids)

    def get_by_external_id(self, external_id: str) -> Customer:
        """The customer with this external id; :class:`NotFound` when there is none (or it
        is outside the actor's ``customers.read`` scope)."""
        access.require(self.crm, "customers.read")
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.customers).where(t.customers.c.external_id == external_id)
            ).first()
            if row is None:
                raise NotFound(f"no customer has external_id {external_id!r}")
            found = self._entity(row, self._consents(connection, [row.id]).get(row.id))
        access.authorise(self.crm, "customers.read", found.id, owner=found.owner)
        return found

    def resolve(self, ref: int | str) -> Customer:
        """Find a customer by numeric id or by external id (``42`` or ``C-0042``); one
        outside the actor's ``customers.read`` scope is not found."""
        if isinstance(ref, int):
            return self.get(ref)
        access.require(self.crm, "customers.read")
        text = str(ref).strip()
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.customers).where(t.customers.c.external_id == text)
            ).first()
            if row is None and text.isdigit():
                row = connection.execute(
                    select(t.customers).where(t.customers.c.id == int(text))
                ).first()
            if row is None:
                raise NotFound(f"customer {text!r} not found (looked up as external id and as id)")
            found = self._entity(row, self._consents(connection, [row.id]).get(row.id))
        try:
            access.authorise(self.crm, "customers.read", found.id, owner=found.owner)
        except NotFound:
            raise NotFound(
                f"customer {text!r} not found (looked up as external id and as id)"
            ) from None
        return found

    def ids_by_external_id(self, external_ids: Iterable[str]) -> dict[str, int]:
        """Map external ids to customer ids in one query (missing ones are absent); a
        helper of imports, which authorise ``import.run`` themselves."""
        wanted = list(set(external_ids))
        if not wanted:
            return {}
        found: dict[str, int] = {}
        with self.crm.reading() as connection:
            for chunk in chunks(iter(wanted), 5000):
                found.update(
                    (row[0], row[1])
                    for row in connection.execute(
                        select(t.customers.c.external_id, t.customers.c.id).where(
                            t.customers.c.external_id.in_(chunk)
                        )
                    )
                )
        return found

    @staticmethod
    def _consents(connection: Any, ids: list[int]) -> dict[int, dict[str, bool]]:
        result: dict[int, dict[str, bool]] = {}
        if not ids:
            return result
        if connection.dialect.name == "postgresql":
            # one array parameter: one statement text (kept prepared by the driver) and no
            # IN list for SQLAlchemy to expand on each call; PostgreSQL plans IN as = ANY
            rows = prebuilt.rows(connection, _consents_pg(), {"ids": ids})
        else:
            rows = connection.execute(_CONSENTS.where(t.consents.c.customer_id.in_(ids)))
        for customer_id, purpose, granted in rows:
            result.setdefault(customer_id, {})[purpose] = bool(granted)
        return result

    def query(
        self,
        *,
        text: str | None = None,
        status: str | None = None,
        owner: str | None = None,
        region: str | None = None,
        kind: str | None = None,
        industry: str | None = None,
        consent: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Select:
        """A SELECT of customers with the given filters, for listing or for plugins.

        ``attributes`` keeps customers whose custom attribute equals the given
        value; a declared attribute's value is converted (and validated) first. Only the
        customers the actor may see are selected (``customers.read``: own, team or all).
        """
        query = select(t.customers)
        owners = access.visible_owners(self.crm, "customers.read")
        if owners is not None:
            query = query.where(t.customers.c.owner.in_(owners))
        if text:  # a case-insensitive substring; % and _ are plain characters
            query = query.where(
                or_(
                    t.customers.c.name.icontains(text, autoescape=True),
                    t.customers.c.email.icontains(text, autoescape=True),
                    t.customers.c.external_id.icontains(text, autoescape=True),
                    t.customers.c.phone.contains(text, autoescape=True),
                )
            )
        for column, value in (
            ("status", status),
            ("owner", owner),
            ("region", region),
            ("kind", kind),
            ("industry", industry),
        ):
            if value:
                query = query.where(t.customers.c[column] == value)
        if consent:
            query = query.where(
                t.customers.c.id.in_(
                    select(t.consents.c.customer_id).where(
                        and_(t.consents.c.purpose == consent, t.consents.c.granted.is_(True))
                    )
                )
            )
        for name, value in (attributes or {}).items():
            query = query.where(self._attribute_equals(name, value))
        return query

    def _attribute_equals(self, name: str, value: Any) -> Any:
        """SQL condition: attribute ``name`` equals ``value`` (typed when declared)."""
        element = t.customers.c.attributes[name]
        definition = self.crm.attribute_definitions.get(name)
        if definition is None:  # free-form: compare the stored text
            return cast(element.as_string(), Text) == str(value)
        converted = definition.convert(value)
        if converted is None:
            raise ValidationError(f"give a value to filter attribute {name!r} by", field=name)
        match definition.type:
            case "boolean":
                return element.as_boolean() == converted
            case "integer":
                return element.as_integer() == converted
            case "decimal":  # numeric, so 12.5 matches a stored 12.50
                return element.as_numeric(18, 4) == converted
        return element.as_string() == _json_value(converted)

    def list(self, *, limit: int | None = 50, offset: int = 0, **filters: Any) -> list[Customer]:
        """Customers matching filters (text, status, owner, region, kind, industry, consent,
        attributes)."""
        plain = _plain_list(filters)
        if plain is not None and access.visible_owners(self.crm, "customers.read") is None:
            # only equality filters, every customer visible: one statement built once, the
            # page of customers joined to their consents (a row per consent)
            statement = _plain_list_statement(tuple(plain), limit is not None)
            with self.crm.reading() as connection:
                params = {**plain, "offset": offset, "limit": limit}
                rows = prebuilt.rows(connection, statement, params)
            return self._with_consents(rows)
        query = self.query(**filters).order_by(t.customers.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.crm.reading() as connection:
            rows = connection.execute(query).all()
            consents = self._consents(connection, [r.id for r in rows])
            return [self._entity(r, consents.get(r.id)) for r in rows]

    def iterate(self, *, batch_size: int = 5000, **filters: Any) -> Iterator[Customer]:
        """Every matching customer, read in batches by id (bounded memory)."""
        last = 0
        while True:
            query = (
                self.query(**filters)
                .where(t.customers.c.id > last)
                .order_by(t.customers.c.id)
                .limit(batch_size)
            )
            with self.crm.reading() as connection:
                rows = connection.execute(query).all()
                consents = self._consents(connection, [r.id for r in rows])
            if not rows:
                return
            for row in rows:
                yield self._entity(row, consents.get(row.id))
            last = rows[-1].id

    def count(self, **filters: Any) -> int:
        """How many customers match ``filters`` (the same filters as :meth:`list`)."""
        with self.crm.reading() as connection:
            return connection.scalar(
                select(func.count()).select_from(self.query(**filters).subquery())
            )

    def contacts(self, customer_id: int) -> list[Contact]:
        """The contact persons of an organisation customer, oldest first
        (``customers.read`` on the customer)."""
        if not access.is_trusted(self.crm):  # a trusted caller (the 360) has checked it
            self.get(customer_id)
        with self.crm.reading() as connection:
            rows = prebuilt.rows(connection, _CONTACTS, {"customer_id": customer_id})
            return [Contact(**row._asdict()) for row in rows]

    def view(self, customer_id: int, *, limit: int = 100) -> Customer360:
        """The 360 view: profile, contacts, timeline, orders, workflows, plugin sections and
        the customer's recent activity (``customers.read`` on the customer; each part is
        shown when the actor may read it, see :mod:`crmkit.core.view360`)."""
        return view360.build(self.crm, customer_id, limit=limit)

    # -- personal data ----------------------------------------------------
    def export(self, customer_id: int) -> dict[str, Any]:
        """Everything held on a customer, core and plugins, as JSON-ready data.

        Installed plugins that are not enabled but hold tables in the database export
        their part too; :class:`PluginError` (nothing exported) when one cannot be loaded.
        Needs ``customers.export`` on the customer.
        """
        return personal.export(self.crm, customer_id)

    def erase(self, customer_id: int, *, actor: str | None = None) -> Customer:
        """Erase a person's data everywhere; order totals stay (anonymised) for statistics.

        Every installed plugin holding tables in the database erases its part, enabled or
        not; :class:`PluginError` (nothing erased) when one cannot be loaded. Erasing an
        erased customer runs every erase hook again, completing a partial erasure. Needs
        ``customers.erase`` on the customer; audited as ``customer.erase`` (field names,
        no values), and the values in the customer's audit entries are scrubbed.
        """
        return personal.erase(self.crm, customer_id, actor=actor).customer

    # -- duplicates and merge ---------------------------------------------------------------
    def find_duplicates_of(self, customer: Customer | int) -> list[DuplicateCandidate]:
        """Stored customers that may be the same as ``customer`` (an entity, stored or not,
        or an id): shared e-mail, phone or name key, strongest evidence first. Needs
        ``customers.read``; only customers the actor may see are candidates."""
        from crmkit.core import duplicates

        target = self.get(customer) if isinstance(customer, int) else customer
        access.require(self.crm, "customers.read")
        found = duplicates.find_for(self.crm, target)
        visible = self._visible_ids({c.customer_id for c in found})
        return found if visible is None else [c for c in found if c.customer_id in visible]

    def _visible_ids(self, ids: set[int]) -> set[int] | None:
        """Of ``ids``, those the actor may see (``customers.read``); None: all of them."""
        owners = access.visible_owners(self.crm, "customers.read")
        if owners is None:
            return None
        visible: set[int] = set()
        with self.crm.reading() as connection:
            for chunk in chunks(iter(sorted(ids)), 5000):
                visible.update(
                    connection.scalars(
                        select(t.customers.c.id).where(
                            t.customers.c.id.in_(chunk), t.customers.c.owner.in_(owners)
                        )
                    )
                )
        return visible

    def duplicates(self, *, max_block: int = 50) -> DuplicateReport:
        """Every pair of customers sharing an e-mail, phone or name key, with the evidence.

        Keys shared by more than ``max_block`` customers are reported as crowded instead
        of as pairs. Erased and merged records are left out. Needs ``customers.read``;
        with an own/team scope only pairs of two customers the actor sees are listed (and
        no crowded keys, which may count others' customers).
        """
        from crmkit.core import duplicates

        access.authorise(self.crm, "customers.read")
        with access.trusted(self.crm):
            report = duplicates.find_pairs(self.crm, max_block=max_block)
        visible = self._visible_ids({i for p in report.pairs for i in (p.first_id, p.second_id)})
        if visible is None:
            return report
        pairs = tuple(p for p in report.pairs if p.first_id in visible and p.second_id in visible)
        return duplicates.DuplicateReport(pairs=pairs, crowded=())

    def merge(
        self,
        kept_id: int,
        merged_id: int,
        *,
        prefer: Mapping[str, str] | None = None,
        actor: str | None = None,
    ) -> MergeResult:
        """Merge customer ``merged_id`` into ``kept_id``, in one transaction.

        Interactions, orders, contacts, workflow instances and consent history move;
        consent per purpose is the more restrictive answer; empty fields and attributes
        are filled from the merged record, and fields both hold differently are chosen
        with ``prefer={"email": "kept" | "merged"}`` (else :class:`MergeConflict`, nothing
        changed). Every plugin's ``crmkit_merge_customers`` moves its data; the merged
        record then points to the kept one (``merged_into``) and takes no writes. Needs
        ``customers.merge`` on both customers; audited as ``customer.merge`` on each.
        """
        from crmkit.core import merge

        return merge.merge(self.crm, kept_id, merged_id, prefer=prefer, actor=actor)


#: a customer with its consents in one query (a row per consent, one when it has none)
_WITH_CONSENTS = select(
    t.customers,
    t.consents.c.purpose.label("consent_purpose"),
    t.consents.c.granted.label("consent_granted"),
).outerjoin(t.consents, t.consents.c.customer_id == t.customers.c.id)

_CONSENTS = select(t.consents.c.customer_id, t.consents.c.purpose, t.consents.c.granted)
_CONSENTS_PG: list[Select[Any]] = []


def _consents_pg() -> Select[Any]:
    if not _CONSENTS_PG:
        # the dialect imported here: a SQLite run never loads it
        from sqlalchemy import Integer, any_
        from sqlalchemy.dialects.postgresql import ARRAY

        ids = bindparam("ids", type_=ARRAY(Integer))
        _CONSENTS_PG.append(_CONSENTS.where(t.consents.c.customer_id == any_(ids)))
    return _CONSENTS_PG[0]


# Statements of the hot reads built once with bound parameters: building a Core
# statement costs about as much CPU as SQLAlchemy's and psycopg's work to run it.
_GET = _WITH_CONSENTS.where(t.customers.c.id == bindparam("customer_id"))

_PAID = (
    select(
        func.count().label("paid_orders"),
        func.sum(t.orders.c.amount).label("revenue"),
        func.max(t.orders.c.occurred_at).label("last_order"),
    )
    .where(t.orders.c.customer_id == bindparam("customer_id"), t.orders.c.status == "paid")
    .subquery("paid")
)


def _has(column: Any) -> Any:
    """Whether a row of ``column``'s table has the bound customer in ``column``."""
    return select(column).where(column == bindparam("customer_id")).exists()


# the 360's read of its customer (CustomerService._get_for_view): _GET's rows, each with
# the paid-order totals and whether the customer has rows in the other parts' tables
# (activity: audit entries of its own or records merged into it)
_GET_FOR_VIEW = (
    _WITH_CONSENTS.add_columns(
        _PAID.c.paid_orders,
        _PAID.c.revenue,
        _PAID.c.last_order,
        _has(t.contacts.c.customer_id).label("has_contacts"),
        _has(t.workflow_instances.c.customer_id).label("has_workflows"),
        _has(t.interactions.c.customer_id).label("has_interactions"),
        _has(t.consent_changes.c.customer_id).label("has_consent_history"),
        or_(_has(t.audit_log.c.customer_id), _has(t.customer_merges.c.kept_id)).label(
            "has_activity"
        ),
    )
    .join_from(t.customers, _PAID, true())
    .where(t.customers.c.id == bindparam("customer_id"))
)
_CONTACTS = (
    select(t.contacts)
    .where(t.contacts.c.customer_id == bindparam("customer_id"))
    .order_by(t.contacts.c.id)
)


#: Customer's fields as a row of ``customers`` holds them, in the entity's order (the
#: consents come from their own table, between ``attributes`` and ``id``)
_ENTITY_COLUMNS = tuple(f.name for f in attrs.fields(Customer) if f.name != "consents")


#: the filters of :meth:`CustomerService.query` that compare a column for equality
_EQUALITY_FILTERS = ("status", "owner", "region", "kind", "industry")
_PLAIN_LISTS: dict[tuple[tuple[str, ...], bool], Select[Any]] = {}


def _plain_list(filters: Mapping[str, Any]) -> dict[str, Any] | None:
    """The equality filters given (as ``query`` applies them: the truthy ones) when no
    other filter is, else None."""
    plain = {}
    for name, value in filters.items():
        if name in _EQUALITY_FILTERS:
            if value:
                plain[name] = value
        elif name in ("text", "consent", "attributes"):
            if value:
                return None
        else:  # not a filter: query() says so
            return None
    return plain


def _plain_list_statement(names: tuple[str, ...], limited: bool) -> Select[Any]:
    """What ``list`` runs for equality filters on ``names`` (bound): the page of customers
    by id (a bound offset and, if ``limited``, limit) joined to their consents, ordered by
    id; built once per combination."""
    key = (names, limited)
    found = _PLAIN_LISTS.get(key)
    if found is None:
        c = t.customers.c
        page = select(t.customers).where(*(c[name] == bindparam(name) for name in names))
        page = page.order_by(c.id).offset(bindparam("offset", type_=Integer))
        if limited:
            page = page.limit(bindparam("limit", type_=Integer))
        rows = page.subquery("page")
        consents = t.consents.c
        found = (
            select(
                rows,
                consents.purpose.label("consent_purpose"),
                consents.granted.label("consent_granted"),
            )
            .outerjoin(t.consents, consents.customer_id == rows.c.id)
            .order_by(rows.c.id)
        )
        _PLAIN_LISTS[key] = found
    return found


def audited_values(customer: Customer) -> dict[str, Any]:
    """A customer's values as audit entries record them: profile fields, then
    ``attributes.<name>`` and ``consents.<purpose>``."""
    values: dict[str, Any] = {f: getattr(customer, f) for f in PROFILE_FIELDS}
    values.update({f"attributes.{k}": v for k, v in customer.attributes.items()})
    values.update({f"consents.{k}": v for k, v in customer.consents.items()})
    return values


__all__ = [
    "BulkResult",
    "ConsentChange",
    "CustomerService",
    "CONSENT_PURPOSES",
]

"""The DynamoDB mapping from the billing subject to its Stripe customer, and nothing but conditional writes.

A subject's row is one of:
- a link: `stripe_customer_id`, `livemode`, `created_at` (rows written before reservations existed are
  links too, so nothing is migrated);
- a reservation: `creation_key`, `reserved_at`, `reserved_by` and `reserved_by_email` (the user whose
  click made it, whose e-mail the customer gets), written
  before the customer is created so that a creation whose row write failed can be found again (by the key,
  in the customer's metadata) instead of being made twice.
A user's row is keyed by the user id, an organization's by `#org#<org id>` (SUBJECT_KINDS). Beside them,
a tombstone per deleted Stripe customer (`#deleted#cus_…`, expiring after 90 days) keeps a late or replayed
webhook from linking a customer that no longer exists. Keys starting with `#` are ours: no subject id may
start with one.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeGuard, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from portal_links import api_versions
from portal_links.errors import StoreUnavailable
from portal_links.priming import answered_locally

if TYPE_CHECKING:
    from botocore.session import Session as AwsSession
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

KEY = "app_user_id"  # the table's hash key; it holds the billing subject's key
BY_CUSTOMER_INDEX = "by_customer"
TOMBSTONE_PREFIX = "#deleted#"
TOMBSTONE_DAYS = 90
MAX_SUBJECT_ID = 255


@dataclass(frozen=True)
class SubjectKind:
    """How one kind of billing subject is keyed, named on its Stripe customer and referenced by Checkout."""

    key_prefix: str  # the table's key is this + the id
    metadata_field: str  # the Stripe customer's metadata that names the subject
    reference_prefix: str  # Checkout's `client_reference_id` is this + the id
    made_by_field: str | None = None  # metadata naming the user who made the customer, if kept
    # The customer is the person: their name goes on it. An organization's customer gets the e-mail of the
    # admin whose click reserved it, and no name.
    is_the_user: bool = False


# The one table of subject kinds: the mapping, the customer's metadata and the webhook linker read it.
SUBJECT_KINDS: dict[str, SubjectKind] = {
    "user": SubjectKind(key_prefix="", metadata_field="app_user_id", reference_prefix="", is_the_user=True),
    "organization": SubjectKind(
        key_prefix="#org#",
        metadata_field="app_org_id",
        reference_prefix="org:",
        made_by_field="app_org_opened_by",
    ),
}
# No subject id starts with the table's own "#" or with a Checkout reference prefix, so neither is ambiguous.
RESERVED_PREFIXES = (
    "#",
    *(kind.reference_prefix for kind in SUBJECT_KINDS.values() if kind.reference_prefix),
)


def usable_subject_id(value: object) -> TypeGuard[str]:
    """An id we may key a row by and send to Stripe: printable text, not too long, no reserved prefix."""
    return (
        isinstance(value, str)
        and bool(value.strip())
        and value.isprintable()
        and len(value) <= MAX_SUBJECT_ID
        and not value.startswith(RESERVED_PREFIXES)
    )


@dataclass(frozen=True)
class BillingSubject:
    """Who pays: an app user (keyed by the user id, as rows have always been) or, in organization mode,
    an organization (keyed `#org#<id>`)."""

    kind: str
    id: str

    @property
    def key(self) -> str:
        return SUBJECT_KINDS[self.kind].key_prefix + self.id

    def metadata(self, made_by: str) -> dict[str, str]:
        """What the Stripe customer carries so that webhooks can find the subject again, and, for kinds that
        keep it, the user whose click made it."""
        kind = SUBJECT_KINDS[self.kind]
        made = {kind.made_by_field: made_by} if kind.made_by_field else {}
        return {kind.metadata_field: self.id, **made}

    @property
    def reference(self) -> str:
        """What an app sets as a Checkout Session's `client_reference_id` for this subject."""
        return SUBJECT_KINDS[self.kind].reference_prefix + self.id

    @property
    def is_the_user(self) -> bool:
        return SUBJECT_KINDS[self.kind].is_the_user

    @classmethod
    def user(cls, user_id: str) -> BillingSubject:
        return cls("user", user_id)

    @classmethod
    def organization(cls, org_id: str) -> BillingSubject:
        return cls("organization", org_id)

    @classmethod
    def named_by(cls, metadata: dict[str, object]) -> BillingSubject | None:
        """The subject a Stripe customer's metadata names: exactly one kind's field, with a usable id."""
        named = [
            (kind, metadata[k.metadata_field])
            for kind, k in SUBJECT_KINDS.items()
            if k.metadata_field in metadata
        ]
        if len(named) != 1:
            return None
        kind, subject_id = named[0]
        return cls(kind, subject_id) if usable_subject_id(subject_id) else None

    @classmethod
    def referenced_by(cls, reference: object) -> BillingSubject | None:
        """The subject a Checkout Session's `client_reference_id` names: `org:<id>`, else a user id."""
        if not isinstance(reference, str):
            return None
        for kind, k in sorted(SUBJECT_KINDS.items(), key=lambda entry: -len(entry[1].reference_prefix)):
            if reference.startswith(k.reference_prefix):
                subject_id = reference.removeprefix(k.reference_prefix)
                return cls(kind, subject_id) if usable_subject_id(subject_id) else None
        return None


@dataclass(frozen=True)
class StripeParty:
    """Whom a link names at Stripe: a customer (cus_…), or an Accounts v2 account used as a customer
    (acct_…), which Stripe's APIs name as `customer_account`. Only the party reads the prefix."""

    id: str

    @property
    def parameter(self) -> Literal["customer", "customer_account"]:
        return "customer_account" if self.id.startswith("acct_") else "customer"

    @property
    def since_api_version(self) -> str | None:
        """The first Stripe API version that can name this party."""
        return api_versions.ACCOUNTS_AS_CUSTOMERS if self.parameter == "customer_account" else None


class CustomerLink(NamedTuple):
    key: str
    stripe_customer_id: str  # the attribute's name since the first row; it may hold an acct_… id too
    livemode: bool

    @property
    def party(self) -> StripeParty:
        return StripeParty(self.stripe_customer_id)


class Reservation(NamedTuple):
    key: str
    creation_key: str
    reserved_at: float  # unix seconds
    reserved_by: str | None = None  # the user whose click reserved it (None: written before this was kept)
    reserved_by_email: str | None = None

    def age_seconds(self) -> float:
        return time.time() - self.reserved_at


Row = CustomerLink | Reservation


class CustomerTable:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    @classmethod
    def from_settings(cls, table_name: str, aws: AwsSession) -> CustomerTable:
        """A client sized for a click: in-region calls take milliseconds, so fail fast and let users retry."""
        config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2})
        return cls(cast("DynamoDBClient", aws.create_client("dynamodb", config=config)), table_name)

    def prime(self) -> None:
        """SnapStart, before the snapshot: a read and conditional writes, answered without DynamoDB."""
        with answered_locally(self._client, {}):
            self.get("snapstart-priming")
            reservation = self.reserve("snapstart-priming", "snapstart-priming", None)
            assert isinstance(reservation, Reservation)
            self.complete(reservation, "cus_priming", livemode=False)

    def close_connections(self) -> None:
        """Drop pooled connections; the next call opens its own (restored copies must not share one)."""
        self._client.close()

    def get(self, key: str) -> Row | None:
        item = self._get_item(key)
        return _row_from(item) if item else None

    def reserve(
        self, key: str, reserved_by: str, email: str | None, replacing: CustomerLink | None = None
    ) -> Row | None:
        """A reservation for a customer yet to be made, unless another request got there first (then
        whatever is stored now). With `replacing`, only if the row still holds that stale link. Who made it
        is kept so that every request completing it asks Stripe for the same customer."""
        reservation = Reservation(key, secrets.token_hex(16), time.time(), reserved_by, email)
        condition = f"attribute_not_exists({KEY})"
        values: dict[str, AttributeValueTypeDef] = {}
        if replacing is not None:
            condition += " OR stripe_customer_id = :stale"
            values = {":stale": {"S": replacing.stripe_customer_id}}
        item: Item = {
            KEY: {"S": key},
            "creation_key": {"S": reservation.creation_key},
            "reserved_at": {"N": str(reservation.reserved_at)},
            "reserved_by": {"S": reserved_by},
        }
        if email is not None:
            item["reserved_by_email"] = {"S": email}
        return reservation if self._put(item, condition, values) else self._stored(key)

    def complete(self, reservation: Reservation, stripe_customer_id: str, livemode: bool) -> Row | None:
        """The reservation becomes a link, unless it was completed or replaced meanwhile (then that)."""
        link = CustomerLink(reservation.key, stripe_customer_id, livemode)
        values: dict[str, AttributeValueTypeDef] = {":key": {"S": reservation.creation_key}}
        return link if self._put(_link_item(link), "creation_key = :key", values) else self._stored(link.key)

    def link_if_absent(self, link: CustomerLink, creation_key: str | None = None) -> Row | None:
        """Link unless the subject has a customer in this mode already: absent rows, rows of the other mode
        and (given its key) the reservation that made this very customer are replaced."""
        # `livemode = :other`, not `livemode <> :mode`: a reservation has no livemode, and `<>` holds for it.
        condition = f"attribute_not_exists({KEY}) OR livemode = :other_mode"
        values: dict[str, AttributeValueTypeDef] = {":other_mode": {"BOOL": not link.livemode}}
        if creation_key is not None:
            condition += " OR creation_key = :key"
            values[":key"] = {"S": creation_key}
        return link if self._put(_link_item(link), condition, values) else self._stored(link.key)

    def keys_linked_to(self, stripe_customer_id: str) -> list[str]:
        """The subjects linked to a customer (from the index, which may lag a write by a moment)."""
        try:
            response = self._client.query(
                TableName=self._table,
                IndexName=BY_CUSTOMER_INDEX,
                KeyConditionExpression="stripe_customer_id = :customer",
                ExpressionAttributeValues={":customer": {"S": stripe_customer_id}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"customers index read failed: {_reason(exc)}") from exc
        return [item[KEY]["S"] for item in response.get("Items", [])]

    def unlink(self, key: str, stripe_customer_id: str) -> bool:
        """Delete the row only if it still links that customer; True if it did."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={KEY: {"S": key}},
                ConditionExpression="stripe_customer_id = :customer",
                ExpressionAttributeValues={":customer": {"S": stripe_customer_id}},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailable(f"customers table delete failed: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"customers table delete failed: {_reason(exc)}") from exc
        return True

    def bury(self, stripe_customer_id: str) -> None:
        """Remember that a Stripe customer was deleted, so nothing links it again."""
        expires = int(time.time()) + TOMBSTONE_DAYS * 86400
        item: Item = {
            KEY: {"S": TOMBSTONE_PREFIX + stripe_customer_id},
            "deleted_customer_id": {"S": stripe_customer_id},
            "expires_at": {"N": str(expires)},
        }
        self._put(item, f"attribute_not_exists({KEY})", {})  # a replayed deletion keeps the first expiry

    def is_buried(self, stripe_customer_id: str) -> bool:
        return self._get_item(TOMBSTONE_PREFIX + stripe_customer_id) is not None

    def _get_item(self, key: str) -> Item | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={KEY: {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"customers table read failed: {_reason(exc)}") from exc
        return response.get("Item")

    def _put(self, item: Item, condition: str | None, values: dict[str, AttributeValueTypeDef]) -> bool:
        """Write `item` if `condition` holds; False when it does not."""
        arguments: dict[str, Any] = {"TableName": self._table, "Item": item}
        if condition is not None:
            arguments["ConditionExpression"] = condition
        if values:
            arguments["ExpressionAttributeValues"] = values
        try:
            self._client.put_item(**arguments)
        except ClientError as exc:
            if condition is not None and _code(exc) == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailable(f"customers table write failed: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"customers table write failed: {_reason(exc)}") from exc
        return True

    def _stored(self, key: str) -> Row | None:
        # A condition failed because of what another request wrote: that is what counts now (None if a
        # webhook deleted it in the meantime).
        return self.get(key)


def _link_item(link: CustomerLink) -> Item:
    return {
        KEY: {"S": link.key},
        "stripe_customer_id": {"S": link.stripe_customer_id},
        "livemode": {"BOOL": link.livemode},
        # when the link was written, for people reading the table; nothing reads it back
        "created_at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
    }


def _row_from(item: Item) -> Row:
    """A row names its customer once the reservation is complete; until then it is the reservation (a row with
    neither is corrupt, and reading it fails)."""
    if "stripe_customer_id" not in item:
        return Reservation(
            key=item[KEY]["S"],
            creation_key=item["creation_key"]["S"],
            reserved_at=float(item["reserved_at"]["N"]),
            reserved_by=item.get("reserved_by", {}).get("S"),
            reserved_by_email=item.get("reserved_by_email", {}).get("S"),
        )
    return CustomerLink(
        key=item[KEY]["S"],
        stripe_customer_id=item["stripe_customer_id"]["S"],
        livemode=item.get("livemode", {}).get("BOOL", False),  # rows from before livemode was kept: test mode
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return _code(exc) or "ClientError"
    return type(exc).__name__

"""The DynamoDB mapping from app user to Stripe customer: get and create-if-absent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from portal_links.errors import StoreUnavailable
from portal_links.priming import answered_locally

if TYPE_CHECKING:
    from botocore.session import Session as AwsSession
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class CustomerLink(NamedTuple):
    app_user_id: str
    stripe_customer_id: str
    livemode: bool
    created_at: str


def new_link(app_user_id: str, stripe_customer_id: str, livemode: bool) -> CustomerLink:
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    return CustomerLink(app_user_id, stripe_customer_id, livemode, created_at)


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
        """SnapStart, before the snapshot: a read and a conditional write, answered without DynamoDB."""
        with answered_locally(self._client, {}):
            self.get("snapstart-priming")
            self.put_if_absent(new_link("snapstart-priming", "cus_priming", livemode=False))

    def close_connections(self) -> None:
        """Drop pooled connections; the next call opens its own (restored copies must not share one)."""
        self._client.close()

    def get(self, app_user_id: str) -> CustomerLink | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"app_user_id": {"S": app_user_id}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"customers table read failed: {_reason(exc)}") from exc
        item = response.get("Item")
        return _link_from(item) if item else None

    def put_if_absent(self, link: CustomerLink) -> CustomerLink:
        """Write the link unless the user already has one; either way return the link that is stored."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "app_user_id": {"S": link.app_user_id},
                    "stripe_customer_id": {"S": link.stripe_customer_id},
                    "livemode": {"BOOL": link.livemode},
                    "created_at": {"S": link.created_at},
                },
                ConditionExpression="attribute_not_exists(app_user_id)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StoreUnavailable(f"customers table write failed: {_reason(exc)}") from exc
            existing = self.get(link.app_user_id)
            if existing is None:
                raise StoreUnavailable("customers table lost a row it just reported") from exc
            return existing
        except BotoCoreError as exc:
            raise StoreUnavailable(f"customers table write failed: {_reason(exc)}") from exc
        return link


def _link_from(item: dict[str, AttributeValueTypeDef]) -> CustomerLink:
    return CustomerLink(
        app_user_id=item["app_user_id"]["S"],
        stripe_customer_id=item["stripe_customer_id"]["S"],
        livemode=item.get("livemode", {}).get("BOOL", False),
        created_at=item.get("created_at", {}).get("S", ""),
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__

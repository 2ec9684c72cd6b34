"""What ``redstep serve`` reads from the environment: region, account and credentials."""

from __future__ import annotations

import configparser
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

TWELVE_ZEROS = "000000000000"


class CredentialsError(ValueError):
    """The configured credentials cannot be used; the message says which and how to fix it."""


class ApiSettings(BaseSettings):
    """The API's knobs; each reads the ``REDSTEP_`` environment variable of its name."""

    model_config = SettingsConfigDict(env_prefix="REDSTEP_", extra="ignore")

    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    account_id: str = Field(default=TWELVE_ZEROS, pattern=r"^\d{12}$")
    access_key_id: str = Field(default="", description="The access key id every request must be signed with.")
    secret_access_key: SecretStr = Field(default=SecretStr(""), description="Its secret (never logged).")
    activity_poll_seconds: float = Field(
        default=60.0, gt=0, le=60, description="How long GetActivityTask waits for a task (AWS: 60 s)."
    )
    sync_execution_limit_seconds: float = Field(
        default=300.0, gt=0, le=300, description="How long StartSyncExecution waits (AWS: 5 minutes)."
    )
    credentials_file: Path | None = Field(
        default=None,
        description=(
            "A file of several key pairs, in the AWS shared credentials format: sections each"
            " with aws_access_key_id and aws_secret_access_key."
        ),
    )

    def credentials(self) -> dict[str, str]:
        """Every configured access key id with its secret.

        Raises:
            CredentialsError: one of a pair is set without the other, or the file is unreadable.
        """
        pairs: dict[str, str] = {}
        secret = self.secret_access_key.get_secret_value()
        if bool(self.access_key_id) != bool(secret):
            raise CredentialsError("set both REDSTEP_ACCESS_KEY_ID and REDSTEP_SECRET_ACCESS_KEY, or neither")
        if self.access_key_id:
            pairs[self.access_key_id] = secret
        if self.credentials_file is not None:
            pairs.update(read_credentials_file(self.credentials_file))
        return pairs


def read_credentials_file(path: Path) -> dict[str, str]:
    """The key pairs of an AWS shared credentials file (every section that holds both keys).

    Raises:
        CredentialsError: the file cannot be read or parsed, or holds no complete pair.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open() as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as error:
        raise CredentialsError(f"REDSTEP_CREDENTIALS_FILE {path}: cannot be read: {error}") from None
    pairs: dict[str, str] = {}
    for section in parser.sections():
        key_id = parser.get(section, "aws_access_key_id", fallback="").strip()
        secret = parser.get(section, "aws_secret_access_key", fallback="").strip()
        if bool(key_id) != bool(secret):
            raise CredentialsError(
                f"REDSTEP_CREDENTIALS_FILE {path}: section [{section}] needs both"
                " aws_access_key_id and aws_secret_access_key"
            )
        if key_id:
            pairs[key_id] = secret
    if not pairs:
        raise CredentialsError(
            f"REDSTEP_CREDENTIALS_FILE {path}: no section holds aws_access_key_id and aws_secret_access_key"
        )
    return pairs

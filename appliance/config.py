"""Typed settings: one TOML file in the appliance home, overridden by ``APPLIANCE_*`` variables.

Nested fields are overridden with a double underscore, e.g. ``APPLIANCE_DICOM__PORT=11113``.
Secrets have no defaults: the key-encryption key comes from a key file in the home or from a
variable named by ``keys.kek_env``, never from this file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from anonymizer.profile import DEFAULT_PROFILE, Profile
from anonymizer.table import DEFAULT_TABLE
from appliance.errors import ConfigError
from dicom_gateway.names import check_ae_title
from models.routing import RoutingRule

CONFIG_FILE = "appliance.toml"
HOME_ENV = "APPLIANCE_HOME"


class Section(BaseModel):
    """A section of ``appliance.toml``: a key it does not know (a misspelling) is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class TlsSettings(Section):
    """DICOM TLS (PS3.15 Annex B, BCP 195): TLS 1.2+ only."""

    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = Field(None, description="CA bundle that client certificates must chain to")
    require_client_cert: bool = True
    handshake_timeout_seconds: float = 10.0


class AdmissionSettings(Section):
    """Connections that have not yet sent their whole association request (dicom_gateway.admission)."""

    pending_total: int = Field(64, ge=1, description="such connections at once, from all addresses")
    pending_per_address: int = Field(8, ge=1, description="such connections at once from one address")
    request_deadline_seconds: float = Field(10.0, gt=0, description="from accept to the whole request")
    max_request_bytes: int = Field(65536, ge=1024, description="largest A-ASSOCIATE-RQ accepted")
    alert_after: int = Field(5, ge=1, description="refusals from one address that raise a Security Alert")
    alert_window_seconds: float = Field(60.0, gt=0)


class DicomSettings(Section):
    ae_title: str = "APPLIANCE"
    host: str = "0.0.0.0"
    port: int = 11112
    max_associations: int = 16
    workers: int = Field(0, ge=0, description="gateway processes sharing the port; 0: one per CPU, at most 4")
    max_pdu: int = Field(262144, description="largest PDU we accept; 0 = unlimited")
    max_instance_bytes: int = Field(1024**3, description="a larger instance gets 0xA700")
    min_free_bytes: int = Field(1024**3, description="below this free space in the store, stores get 0xA700")
    network_timeout_seconds: float = 60.0
    admission: AdmissionSettings = AdmissionSettings()
    tls: TlsSettings = TlsSettings()

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return check_ae_title(value)


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    tls_certificate: Path | None = Field(None, description="PEM certificate chain served on the HTTP port")
    tls_private_key: Path | None = Field(None, description="its PEM private key (mode 600)")
    allow_plain_http: bool = Field(
        False, description="serve plain HTTP on an address other than loopback (behind a TLS proxy only)"
    )
    token_seconds: int = Field(
        900, ge=60, le=86400, description="lifetime of a sign-in's token; a page session's idle limit"
    )
    session_hours: float = Field(12.0, gt=0, le=24, description="a page session ends this long after sign-in")
    break_glass_minutes: int = Field(60, ge=5, le=1440, description="how long emergency access lasts")
    viewer_directory: Path | None = Field(
        None,
        description="OHIF's built viewer (scripts/fetch-viewer.sh); default: the install's share/ohif-viewer",
    )


class KeySettings(Section):
    source: Literal["directory", "env"] = Field(
        "directory", description='"directory": keys/ in the home; "env": the KEK (base64) in $APPLIANCE_KEK'
    )
    directory: Path = Path("keys")
    kek_env: str = "APPLIANCE_KEK"
    previous_kek_env: str = "APPLIANCE_KEK_PREVIOUS"


class AssemblySettings(Section):
    quiet_seconds: float = Field(
        30.0, description="a series is complete after this long without a new instance"
    )
    poll_seconds: float = 1.0


class SendSettings(Section):
    max_attempts: int = 8
    backoff_initial_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    poll_seconds: float = 1.0
    ae_title: str = "APPLIANCE"


class SyslogSettings(Section):
    """IHE ATNA: audit messages over syslog on TLS (RFC 5425) to a SIEM."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 6514
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    poll_seconds: float = 1.0
    witness: bool = Field(True, description="also ship every signed checkpoint: the SIEM witnesses the log")


class AuditSettings(Section):
    directory: Path = Path("audit")
    witness: Path = Field(
        Path("witness/audit-checkpoints.jsonl"),
        description="where each signed checkpoint is also written, outside the log directory",
    )
    origin: str = "imaging-appliance"
    checkpoint_every: int = 1000
    # at most this long after an entry, a signed checkpoint covers it: the window in which entries
    # written just before a crash could be cut without verify noticing
    checkpoint_seconds: float = Field(5.0, gt=0)
    syslog: SyslogSettings = SyslogSettings()


class InferenceSettings(Section):
    """The inference runner: routing rules, limits, and where results go."""

    enabled: bool = True
    device: str = Field("auto", description='"auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N"')
    workers: int = Field(0, ge=0, description="runner processes; 0: one per GPU, or one on the CPU")
    timeout_seconds: float = Field(900.0, gt=0, description="a job running longer is stopped and retried")
    max_attempts: int = Field(2, ge=1)
    retry_seconds: float = Field(30.0, ge=0)
    poll_seconds: float = 1.0
    prepare_ahead_seconds: float = Field(
        1.0,
        ge=0,
        description="a series still receiving but quiet this long is read and preprocessed ahead, so the "
        "network starts as soon as the series completes; 0: off",
    )
    batch_series: int = Field(
        0,
        ge=0,
        le=16,
        description="series an inference process runs through the network together when several wait "
        "(dynamic batching: their windows share the network's batches); 0: 4 on a GPU, 1 on the CPU",
    )
    batch_wait_seconds: float = Field(
        0.5,
        ge=0,
        description="how long a prepared series waits for others being prepared to join its batch",
    )
    release_memory_after_seconds: float = Field(
        30.0,
        gt=0,
        description="an inference process keeps the memory a series used for the next one and hands it "
        "back to the system once it has had no series this long",
    )
    destinations: list[str] = Field(
        default_factory=list,
        description="destination names for SEG and SR; empty: those added with --results (none by default)",
    )
    rules: list[RoutingRule] = Field(default_factory=list)


class DeidentifySettings(Section):
    """De-identification: PS3.15 Table E.1-1 as JSON, named profiles, and the one used by default."""

    profile_table: Path = Field(
        DEFAULT_TABLE,
        description="PS3.15 Table E.1-1 as JSON (default: the copy shipped with the anonymizer)",
    )
    default_profile: str = DEFAULT_PROFILE
    profiles: dict[str, Profile] = Field(
        default_factory=dict, description='more named profiles besides the built-in "basic" and "research"'
    )


class ComplianceSettings(Section):
    """The written policy the compliance report checks the appliance against (see appliance.compliance)."""

    interval_hours: float = Field(
        24.0, ge=0, description="a report this often while running; 0: on demand only"
    )
    checkpoint_max_age_minutes: float = Field(
        60.0, gt=0, description="an audit entry older than this must be covered by a signed checkpoint"
    )
    account_idle_days: int = Field(90, ge=1, description="an account unused this long should be disabled")
    enrolment_days: int = Field(7, ge=1, description="an account must enrol its one-time code within this")
    break_glass_review_days: int = Field(
        3, ge=0, description="an emergency access must be reviewed within this"
    )
    failed_login_burst: int = Field(5, ge=2, description="this many failed sign-ins of one name, within")
    failed_login_window_minutes: float = Field(10.0, gt=0, description="...this window, are an attack")
    key_max_age_days: int = Field(
        365, ge=1, description="rotate the KEK and signing keys at least this often"
    )
    alert_severity: Literal["low", "medium", "high"] = Field(
        "high", description="a failed check this severe or worse is also a Security Alert (to the syslog)"
    )


class Settings(BaseSettings):
    """Everything the appliance reads at start; paths are relative to ``home``."""

    model_config = SettingsConfigDict(env_prefix="APPLIANCE_", env_nested_delimiter="__", extra="forbid")

    home: Path
    database_url: str | None = None
    database_password_file: Path | None = Field(
        None, description="a file holding the database password (a container's secret), put into database_url"
    )
    store_directory: Path = Path("store")
    log_directory: Path = Path("logs")
    log_level: str = "INFO"
    dicom: DicomSettings = DicomSettings()
    http: HttpSettings = HttpSettings()
    keys: KeySettings = KeySettings()
    assembly: AssemblySettings = AssemblySettings()
    send: SendSettings = SendSettings()
    audit: AuditSettings = AuditSettings()
    inference: InferenceSettings = InferenceSettings()
    deidentify: DeidentifySettings = DeidentifySettings()
    compliance: ComplianceSettings = ComplianceSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the file named by model_config["toml_file"] (see load_settings), under the environment
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    def path(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else self.home / relative

    @property
    def store_path(self) -> Path:
        return self.path(self.store_directory)

    @property
    def log_path(self) -> Path:
        return self.path(self.log_directory)

    @property
    def key_directory(self) -> Path:
        return self.path(self.keys.directory)

    @property
    def sqlalchemy_url(self) -> str:
        if not self.database_url:
            return f"sqlite:///{self.home / 'appliance.db'}"
        if self.database_password_file is None:
            return self.database_url
        from sqlalchemy.engine import make_url

        try:
            password = self.path(self.database_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"database_password_file {self.database_password_file}: {exc.strerror}"
            ) from None
        return make_url(self.database_url).set(password=password).render_as_string(hide_password=False)


def resolve_home(home: str | Path | None) -> Path:
    """The home given, else ``$APPLIANCE_HOME``; an error saying how to set one otherwise."""
    value = home or os.environ.get(HOME_ENV)
    if not value:
        raise ConfigError(f"no appliance home: pass --home DIR or set {HOME_ENV}")
    return Path(value).resolve()


def load_settings(home: Path) -> Settings:
    """Read ``home/appliance.toml`` with environment overrides; refuse a home that is not one."""
    toml_file = home / CONFIG_FILE
    if not toml_file.is_file():
        raise ConfigError(
            f"{home} is not an appliance home (no {CONFIG_FILE}); create one with "
            f"'appliance init --home {home}'"
        )

    class FromFile(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml_file})

    try:
        return FromFile(home=home)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration in {toml_file} or APPLIANCE_* variables: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{toml_file} is not valid TOML ({exc}); fix it or run 'appliance init' afresh"
        ) from exc

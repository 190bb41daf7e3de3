"""``appliance workspaces``: where releases go (a folder, an S3 bucket, a research PACS's DICOMweb).

S3 credentials come from boto3's own chain (the standard AWS variables) or from a credentials file
(AWS's INI form, mode 0600) whose keys are kept encrypted under the database field key.
"""

from __future__ import annotations

import configparser
import json
import stat
from pathlib import Path

from sqlmodel import select

from anonymizer.errors import ReleaseError
from anonymizer.release.stores import FolderStore, S3Store, WorkspaceStore, parse_s3_url
from anonymizer.release.targets import DicomwebTarget, ObjectTarget, ReleaseTarget
from appliance.admin.changes import record_change
from appliance.context import Appliance
from appliance.db.tables import Workspace, WorkspaceKind
from appliance.errors import ConfigError, NotFound
from audit.events import Action

_CREDENTIALS = "workspace.credentials"
LOCAL = "local"  # the folder workspace every new home has: a release needs no server


def read_credentials_file(path: Path) -> tuple[str, str]:
    """The access key id and secret of the ``[default]`` profile of an AWS credentials file."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it first")
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
        section = parser["default"]
        return section["aws_access_key_id"], section["aws_secret_access_key"]
    except (configparser.Error, KeyError):
        raise ConfigError(
            f"{path}: expected an AWS credentials file with aws_access_key_id and aws_secret_access_key "
            "under [default]"
        ) from None


def add_workspace(
    app: Appliance,
    actor: str,
    name: str,
    kind: WorkspaceKind,
    url: str,
    endpoint: str | None = None,
    region: str | None = None,
    credentials_file: Path | None = None,
) -> Workspace:
    if kind == WorkspaceKind.S3:
        parse_s3_url(url)  # refuses what is not s3://BUCKET/...
    elif kind == WorkspaceKind.DIR:
        folder = Path(url).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        url = str(folder)
    elif not url.startswith(("http://", "https://")):
        raise ConfigError(f"{url!r}: a DICOMweb workspace is the service's http(s) URL")
    if (endpoint or region or credentials_file) and kind != WorkspaceKind.S3:
        raise ConfigError("--endpoint, --region and --credentials-file are for --s3 workspaces")
    sealed = None
    if credentials_file is not None:
        sealed = app.fields.encrypt(_CREDENTIALS, json.dumps(read_credentials_file(credentials_file)))
    with app.session() as session:
        if session.exec(select(Workspace).where(Workspace.name == name)).first() is not None:
            raise ConfigError(f"workspace {name} exists: remove it first to change it")
        row = Workspace(
            name=name, kind=kind, url=url, endpoint=endpoint, region=region, credentials_enc=sealed
        )
        session.add(row)
        session.commit()
        session.refresh(row)
    detail = {"kind": kind.value, "url": url, "endpoint": endpoint, "credentials": sealed is not None}
    record_change(app, actor, Action.CREATE, "workspace", name, "added", detail)
    return row


def list_workspaces(app: Appliance) -> list[Workspace]:
    with app.session() as session:
        return list(session.exec(select(Workspace).order_by(Workspace.name)).all())


def get_workspace(app: Appliance, name: str) -> Workspace:
    with app.session() as session:
        row = session.exec(select(Workspace).where(Workspace.name == name)).first()
    if row is None:
        known = ", ".join(w.name for w in list_workspaces(app)) or "none"
        raise NotFound(f"no workspace named {name} (known: {known}); add it with `appliance workspaces add`")
    return row


def remove_workspace(app: Appliance, actor: str, name: str) -> None:
    row = get_workspace(app, name)
    with app.session() as session:
        session.delete(session.get(Workspace, row.id))
        session.commit()
    record_change(app, actor, Action.DELETE, "workspace", name, "removed")


def store_of(app: Appliance, workspace: Workspace) -> WorkspaceStore:
    """The object store of a folder or S3 workspace (a DICOMweb one has none)."""
    if workspace.kind == WorkspaceKind.DIR:
        return FolderStore(Path(workspace.url))
    if workspace.kind == WorkspaceKind.DICOMWEB:
        raise ConfigError(f"workspace {workspace.name} is a DICOMweb server: it has no object store")
    credentials = None
    if workspace.credentials_enc is not None:
        key_id, secret = json.loads(app.fields.decrypt(_CREDENTIALS, workspace.credentials_enc))
        credentials = (key_id, secret)
    return S3Store(parse_s3_url(workspace.url, workspace.endpoint, workspace.region), credentials)


def target_of(app: Appliance, workspace: Workspace) -> ReleaseTarget:
    if workspace.kind == WorkspaceKind.DICOMWEB:
        return DicomwebTarget(workspace.url)
    return ObjectTarget(store_of(app, workspace))


def check_workspace(app: Appliance, name: str) -> str:
    """Reach the workspace and list it; return its URL, or raise saying what failed."""
    workspace = get_workspace(app, name)
    target = target_of(app, workspace)
    try:
        target.check()
    except ReleaseError as exc:
        raise ConfigError(f"workspace {name}: {exc}") from None
    return target.url

"""Sources (who may send to us) and destinations (where we send): records and the source policy.

Both live in the database, so a change made by the CLI applies to a running appliance at its
next association or send, without a restart.
"""

from __future__ import annotations

import ipaddress
import socket

from sqlmodel import Session, select

from appliance.admin.changes import record_change
from appliance.context import Appliance
from appliance.db.tables import Destination, Source
from appliance.errors import ConfigError, NotFound
from audit.events import Action
from dicom_gateway.names import check_ae_title, check_host, check_port
from dicom_gateway.policy import AssociationRequest, RejectReason


def _addresses(host: str) -> frozenset[str]:
    """Resolved at each association (not cached), so a DNS change applies without a restart."""
    try:
        return frozenset(info[4][0] for info in socket.getaddrinfo(host, None))
    except OSError:
        return frozenset()


def host_matches(allowed: str, peer: str) -> bool:
    """An allowed host is an IP, a network in CIDR form, or a name resolved to addresses."""
    try:
        return ipaddress.ip_address(peer) in ipaddress.ip_network(allowed, strict=False)
    except ValueError:
        return peer in _addresses(allowed)


def certificate_bound(source: Source, request: AssociationRequest) -> bool:
    """The client certificate names this source: its configured subject, else CN = AE title."""
    if source.tls_subject:
        expected = source.tls_subject
        return expected in (request.certificate_subject, request.certificate_common_name)
    return request.certificate_common_name == source.ae_title


class DatabaseSourcePolicy:
    """The gateway's SourcePolicy over the ``source`` table, read at every association."""

    def __init__(self, app: Appliance, require_client_cert: bool) -> None:
        self.app = app
        self.require_client_cert = require_client_cert

    def evaluate(self, request: AssociationRequest) -> RejectReason | None:
        with Session(self.app.engine) as session:
            sources = session.exec(select(Source).where(Source.ae_title == request.calling_ae)).all()
        if not sources:
            return RejectReason.CALLING_AE_NOT_RECOGNISED
        from_host = [s for s in sources if host_matches(s.host, request.host)]
        if not from_host:
            return RejectReason.HOST_NOT_ALLOWED
        if request.tls and self.require_client_cert:
            if request.certificate_subject is None:
                return RejectReason.NO_CLIENT_CERTIFICATE
            if not any(certificate_bound(s, request) for s in from_host):
                return RejectReason.CERTIFICATE_NOT_BOUND
        return None


def _checked(ae_title: str, host: str, port: int | None = None) -> None:
    try:
        check_ae_title(ae_title)
        check_host(host)
        if port is not None:
            check_port(port)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def add_source(
    app: Appliance, actor: str, name: str, ae_title: str, host: str, tls_subject: str | None
) -> Source:
    _checked(ae_title, host)
    with app.session() as session:
        if session.exec(select(Source).where(Source.name == name)).first():
            raise ConfigError(f"a source named {name} exists; remove it first")
        source = Source(name=name, ae_title=ae_title, host=host, tls_subject=tls_subject)
        session.add(source)
        session.commit()
    record_change(app, actor, Action.CREATE, "source", name, "added", {"ae_title": ae_title, "host": host})
    return source


def add_destination(
    app: Appliance,
    actor: str,
    name: str,
    ae_title: str,
    host: str,
    port: int,
    tls: bool,
    results: bool = False,
) -> Destination:
    _checked(ae_title, host, port)
    with app.session() as session:
        if session.exec(select(Destination).where(Destination.name == name)).first():
            raise ConfigError(f"a destination named {name} exists; remove it first")
        destination = Destination(
            name=name, ae_title=ae_title, host=host, port=port, tls=tls, results=results
        )
        session.add(destination)
        session.commit()
    detail = {"ae_title": ae_title, "host": host, "port": port, "tls": tls, "results": results}
    record_change(app, actor, Action.CREATE, "destination", name, "added", detail)
    return destination


def get_destination(app: Appliance, name: str) -> Destination:
    with app.session() as session:
        found = session.exec(select(Destination).where(Destination.name == name)).first()
    if found is None:
        raise NotFound(f"no destination named {name}; see 'appliance destinations list'")
    return found


def remove_peer(app: Appliance, actor: str, table: type[Source] | type[Destination], name: str) -> None:
    kind = table.__tablename__
    with app.session() as session:
        found = session.exec(select(table).where(table.name == name)).first()
        if found is None:
            raise NotFound(f"no {kind} named {name}")
        session.delete(found)
        session.commit()
    record_change(app, actor, Action.DELETE, kind, name, "removed")


def list_peers(app: Appliance, table: type[Source] | type[Destination]) -> list:
    with app.session() as session:
        return list(session.exec(select(table).order_by(table.name)).all())

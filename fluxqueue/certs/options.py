"""Command-line options for self-managed webhook certificates, exactly as the Helm chart passes them.

The controller's CLI calls ``add_arguments(parser)`` and, at start, ``manager_from_args(args, client)``;
the chart (templates/controller-deployment.yaml) renders the same flags, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from fluxqueue.certs.authority import RotationPolicy, ServingIdentity
from fluxqueue.certs.manager import CertificateManager

DEFAULT_SERVICE = "fluxqueue-webhook"
DEFAULT_CONFIGURATION = "fluxqueue-webhook"
DEFAULT_SECRET = "fluxqueue-webhook-tls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("webhook certificates (self-managed, no cert-manager)")
    group.add_argument(
        "--webhook-service",
        default=DEFAULT_SERVICE,
        help="Service the API server calls the webhook through (names the certificate)",
    )
    group.add_argument(
        "--webhook-configuration",
        default=DEFAULT_CONFIGURATION,
        help="MutatingWebhookConfiguration whose caBundle we keep current ('' to not inject)",
    )
    group.add_argument(
        "--webhook-secret",
        default=DEFAULT_SECRET,
        help="Secret holding the CA and serving certificate, shared by replicas",
    )
    group.add_argument("--ca-validity-days", type=int, default=5 * 365)
    group.add_argument("--serving-validity-days", type=int, default=365)
    group.add_argument(
        "--webhook-extra-dns",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS subjectAltName (repeatable)",
    )
    group.add_argument(
        "--webhook-extra-ip",
        action="append",
        default=[],
        metavar="IP",
        help="extra IP subjectAltName, e.g. 127.0.0.1 for the simulator (repeatable)",
    )


def manager_from_args(
    args: argparse.Namespace, client: Any, namespace: str, metrics: Any = None
) -> CertificateManager:
    """A ``CertificateManager`` for the options in ``args`` (see ``add_arguments``)."""
    identity = ServingIdentity.for_service(
        args.webhook_service,
        namespace,
        extra_dns=tuple(args.webhook_extra_dns),
        extra_ips=tuple(args.webhook_extra_ip),
    )
    policy = RotationPolicy(
        ca_validity=dt.timedelta(days=args.ca_validity_days),
        serving_validity=dt.timedelta(days=args.serving_validity_days),
    )
    return CertificateManager(
        client,
        namespace=namespace,
        secret_name=args.webhook_secret,
        webhook_configuration=args.webhook_configuration or None,
        identity=identity,
        policy=policy,
        metrics=metrics,
    )

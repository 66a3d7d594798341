"""Where the API server is and how to authenticate to it, read by kubernetes_asyncio's loaders.

A kubeconfig file (or a ``KUBECONFIG``-style list of them) or the pod's service account. The loaders handle
what users' kubeconfigs hold: tokens and token files, client certificates, exec credential plugins
(``users[].user.exec``: EKS, GKE, AKS, OIDC sign-in), OIDC and GCP auth providers, basic auth. Only the
loading is theirs: requests go through ``fluxqueue.kube.http``, which asks :meth:`KubeConfig.due` (a
clock comparison) before each one.

A context other than ``current-context`` is chosen with ``context`` (``--context``, or ``FLUXQUEUE_CONTEXT``).
Of a ``KUBECONFIG`` list, the first file that sets ``current-context`` names it, as kubectl has it. A cluster's
``proxy-url`` (an ``http://`` proxy) is where requests go: CONNECT tunnels to an https server, absolute-form
requests to a plain-http one, as client-go's transport sends them.

Exec credential plugins run as asyncio subprocesses with no stdin, in their own session, and are killed
(with whatever they started) when they have not answered within ``FLUXQUEUE_EXEC_TIMEOUT`` seconds (60):
client-go waits for ever, which a controller must not.

Credentials are loaded again, as client-go does:
- an exec credential with an ``expirationTimestamp`` shortly before it expires; any exec credential when
  the API server answers 401 (client-go's exec authenticator forgets its cached credential then);
- a token kept in a file (``tokenFile``, the projected service account token) every minute
  (client-go's cachingTokenSource period): kubelet replaces it well before it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from fluxqueue.errors import ConfigError
from fluxqueue.log import get_logger

log = get_logger(__name__)

TOKEN_FILE_PERIOD_S = 60.0
# An expiring credential is renewed this long before it expires (half its lifetime when that is shorter),
# so that requests in flight when it is replaced were sent with a valid one.
EXPIRY_MARGIN_S = 60.0
# Never due again sooner than this after a renewal: a plugin that hands back the same credential as its
# expiry nears (one that caches it) or one already expired is not run once per request.
MIN_RENEWAL_INTERVAL_S = 1.0
# A credential renewed because the server refused it is not renewed again sooner than this: a plugin that
# keeps handing out a refused token would otherwise run once per request.
REFUSED_RENEWAL_INTERVAL_S = 1.0
# After a failed renewal (the plugin failed, the token file is unreadable) the last credential is kept and
# the renewal tried again this much later.
RETRY_AFTER_FAILURE_S = 10.0

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

CONTEXT_ENV = "FLUXQUEUE_CONTEXT"  # the kubeconfig context when none is passed (``--context``)
EXEC_TIMEOUT_ENV = "FLUXQUEUE_EXEC_TIMEOUT"
EXEC_TIMEOUT_S = 60.0  # an exec credential plugin that has not answered by then is killed


@dataclass(frozen=True)
class Access:
    """What requests need: the server, how to check its certificate and ours, and the Authorization header."""

    server: str
    authorization: str | None = None  # "Bearer ..." or "Basic ..."
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    tls_server_name: str | None = None  # the name the server's certificate carries, when not the host's
    proxy: str | None = None  # the cluster's proxy-url: http://[user:password@]host:port

    def ssl_context(self) -> ssl.SSLContext | None:
        """None for a plain-HTTP server."""
        if not self.server.startswith("https"):
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file if self.verify else None)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def same_tls(self, other: Access) -> bool:
        return (self.ca_file, self.cert_file, self.key_file, self.verify) == (
            other.ca_file,
            other.cert_file,
            other.key_file,
            other.verify,
        )


class KubeConfig:
    """The loaded configuration (:attr:`access`) and when to load its credentials again.

    ``await KubeConfig.load(path)``, or ``path=None`` for the in-cluster service account.
    """

    def __init__(self, source: _Source, access: Access, origin: str):
        self._source = source
        self.access = access
        self.origin = origin  # for messages: the kubeconfig's path or "the in-cluster service account"
        self._renew_at = source.renew_at()
        self._refused_at = -1e18
        self._lock = asyncio.Lock()

    @classmethod
    async def load(cls, kubeconfig: str | os.PathLike | None, context: str | None = None) -> KubeConfig:
        """Raises ConfigError (one line) when the file or the service account cannot be used.

        ``context`` None: ``FLUXQUEUE_CONTEXT`` if set, else the kubeconfig's current-context.
        """
        source: _Source
        context = context or os.environ.get(CONTEXT_ENV) or None
        if kubeconfig is None:
            if context:
                raise ConfigError(f"context {context!r} needs a kubeconfig (pass --kubeconfig)")
            source = _InCluster()
            origin = "the in-cluster service account"
        else:
            source = _KubeconfigFile(str(kubeconfig), context)
            origin = f"kubeconfig {source.paths_text}"
        try:
            access = await source.load()
        except Exception as exc:
            raise ConfigError(f"{origin}: {_describe(exc)}") from exc
        if not access.server.startswith(("https://", "http://")):
            raise ConfigError(f"{origin}: server {access.server!r} is not an http(s) URL")
        try:
            access.ssl_context()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"{origin}: unusable TLS settings: {_describe(exc)}") from exc
        if access.proxy is not None:
            _check_proxy(origin, access.proxy)
        return cls(source, access, origin)

    @property
    def server(self) -> str:
        return self.access.server

    def due(self) -> bool:
        """Whether the credentials should be loaded again before the next request (cheap: a clock read)."""
        return time.monotonic() >= self._renew_at

    async def renew(self, refused: str | None = None) -> bool:
        """Load the credentials again; True when :attr:`access` changed.

        ``refused``: the Authorization header the API server just answered 401 to. Renewed only when it is
        still the current one (concurrent requests refused together renew once), for sources whose
        credentials can change (exec plugins, token files).
        """
        async with self._lock:
            if refused is not None:
                if self.access.authorization != refused:
                    return True  # renewed meanwhile: try again with the new one
                now = time.monotonic()
                if not self._source.renewable or now - self._refused_at < REFUSED_RENEWAL_INTERVAL_S:
                    return False
                self._refused_at = now
            elif not self.due():
                return False
            before = self.access
            try:
                access = await self._source.load(force=refused is not None)
            except Exception as exc:
                self._renew_at = time.monotonic() + RETRY_AFTER_FAILURE_S
                log.warning(
                    "cannot load the API credentials again; keeping the last ones",
                    source=self.origin,
                    error=_describe(exc),
                )
                return False
            self.access = access
            self._renew_at = self._source.renew_at()
            changed = access != before
            if changed:
                log.info("API credentials loaded again", source=self.origin)
            return changed


def _check_proxy(origin: str, proxy: str) -> None:
    # The URL is not repeated in messages: it may carry a password.
    try:
        url = urlsplit(proxy)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{origin}: proxy-url is not a valid URL") from exc
    if url.scheme != "http":
        what = f"{url.scheme}:// proxies are" if url.scheme else "a proxy-url without a scheme is"
        raise ConfigError(f"{origin}: proxy-url: {what} not supported, only http:// proxies")
    if not url.hostname:
        raise ConfigError(f"{origin}: proxy-url names no host")


def exec_timeout() -> float:
    """Seconds an exec credential plugin may take (``FLUXQUEUE_EXEC_TIMEOUT``; raises ConfigError)."""
    raw = os.environ.get(EXEC_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return EXEC_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{EXEC_TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


async def run_exec_plugin(exec_config: Any, limit_s: float) -> dict:
    """Run a ``users[].user.exec`` plugin; its ExecCredential's ``status``. Raises ConfigError (one line).

    kubernetes_asyncio's ExecProvider builds the command line and environment; it is run here because its
    own run has no timeout and could not kill what it started when cancelled.
    """
    from kubernetes_asyncio.config.exec_provider import ExecProvider

    provider = ExecProvider(exec_config)
    command = provider.args[0]
    # No stdin: nobody is there to answer a prompt, and a plugin reading it gets end-of-file instead of
    # waiting (client-go connects stdin only to an interactive plugin).
    info = {"apiVersion": provider.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env = dict(provider.env, KUBERNETES_EXEC_INFO=json.dumps(info))
    try:
        proc = await asyncio.create_subprocess_exec(
            *provider.args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: killed with what it started (helpers, browsers)
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"the credential plugin {command!r} was not found") from exc
    except OSError as exc:
        raise ConfigError(f"the credential plugin {command!r} cannot be run: {_describe(exc)}") from exc
    try:
        async with asyncio.timeout(limit_s):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        raise ConfigError(
            f"the credential plugin {command!r} did not answer within {limit_s:g} s ({EXEC_TIMEOUT_ENV})"
        ) from None
    finally:
        if proc.returncode is None:  # timed out or cancelled
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # Waited for briefly (the event loop's child watcher reaps it in any case): wait() also waits
            # for its pipes, which a helper that left its process group may hold open.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await proc.wait()
    if proc.returncode != 0:
        text = stderr.decode("utf-8", "replace").strip()
        first = text.splitlines()[0] if text else ""
        raise ConfigError(f"exec: process returned {proc.returncode}" + (f". {first}" if first else ""))
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        raise ConfigError(f"exec: the plugin {command!r} printed no JSON ExecCredential") from exc
    if not isinstance(data, dict) or not all(k in data for k in ("apiVersion", "kind", "status")):
        raise ConfigError(
            f"exec: the plugin {command!r} printed no ExecCredential (apiVersion, kind, status)"
        )
    if data["apiVersion"] != provider.api_version:
        raise ConfigError(
            f"exec: plugin api version {data['apiVersion']} does not match {provider.api_version}"
        )
    if not isinstance(data["status"], dict):
        raise ConfigError(f"exec: the plugin {command!r} printed an ExecCredential without a status")
    return data["status"]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: not found"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, yaml.YAMLError):
        return "not valid YAML"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _authorization(configuration: Any) -> str | None:
    value = (configuration.api_key or {}).get("BearerToken")
    # The in-cluster loader keeps the token file's trailing newline; a header value must not carry one.
    return value.strip() if value else None


def _access(configuration: Any) -> Access:
    return Access(
        server=configuration.host.rstrip("/"),
        authorization=_authorization(configuration),
        ca_file=configuration.ssl_ca_cert,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        verify=bool(configuration.verify_ssl),
        tls_server_name=getattr(configuration, "tls_server_name", None),
        proxy=configuration.proxy or None,
    )


class _LoaderLog(logging.Handler):
    """Collects what kubernetes_asyncio's loader logs at error level while it loads: what it raises is
    reported once, by the caller; what it only logs is the caller's to report."""

    NAME = "kubernetes_asyncio.config.kube_config"

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> list[str]:
        logger = logging.getLogger(self.NAME)
        self._propagate = logger.propagate
        logger.addHandler(self)
        logger.propagate = False
        return self.messages

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger(self.NAME)
        logger.removeHandler(self)
        logger.propagate = self._propagate


class _Source:
    renewable = False

    async def load(self, force: bool = False) -> Access:
        raise NotImplementedError

    def renew_at(self) -> float:
        """When (time.monotonic()) the credentials just loaded are due to be loaded again."""
        return float("inf")


@functools.cache
def _loader_class() -> type:
    from kubernetes_asyncio.config.dateutil import parse_rfc3339
    from kubernetes_asyncio.config.kube_config import FileOrData, KubeConfigLoader, _is_expired

    class Loader(KubeConfigLoader):
        """kubernetes_asyncio's loader with the exec plugin run by :func:`run_exec_plugin` (the rest of
        ``load_from_exec_plugin`` as it is there)."""

        exec_timeout = EXEC_TIMEOUT_S

        async def load_from_exec_plugin(self) -> bool:
            expiry = getattr(self, "exec_plugin_expiry", None)
            if expiry is not None and not _is_expired(expiry):
                return True
            status = await run_exec_plugin(self._user["exec"], self.exec_timeout)
            if "token" in status:
                self.token = f"Bearer {status['token']}"
                if "expirationTimestamp" in status:
                    self.exec_plugin_expiry = parse_rfc3339(status["expirationTimestamp"])
            elif "clientCertificateData" in status:
                if "clientKeyData" not in status:
                    raise ConfigError("exec: missing clientKeyData field in plugin output")
                base_path = self._get_base_path(self._cluster.path)
                for attr, key in (("cert_file", "clientCertificateData"), ("key_file", "clientKeyData")):
                    data = FileOrData(
                        status,
                        None,
                        data_key_name=key,
                        file_base_path=base_path,
                        base64_file_content=False,
                        temp_file_path=self._temp_file_path,
                    )
                    setattr(self, attr, data.as_file())
            else:
                # Logged and gone on from, as kubernetes_asyncio does (_LoaderLog reports it).
                logging.getLogger(_LoaderLog.NAME).error(
                    "exec: missing token or clientCertificateData field in plugin output"
                )
            return True

    return Loader


def _merged(paths: list[str]) -> Any:
    """The files merged as kubectl merges them (the first file naming a cluster, user or context wins; so
    does the first setting current-context, where kubernetes_asyncio's merger lets the last win)."""
    from kubernetes_asyncio.config.kube_config import KubeConfigMerger

    merger = KubeConfigMerger(os.pathsep.join(paths))
    config = merger.config
    for path in paths:
        doc = merger.config_files.get(path)
        if isinstance(doc, dict) and doc.get("current-context"):
            config.value["current-context"] = doc["current-context"]
            break
    return config


class _KubeconfigFile(_Source):
    def __init__(self, paths: str, context: str | None):
        self.paths = [os.path.expanduser(p) for p in paths.split(os.pathsep) if p]
        self.paths_text = os.pathsep.join(self.paths)
        self.context = context
        self.loader: Any = None
        self._exec = False
        self._token_file = False
        self._expiry: dt.datetime | None = None
        self._loaded_at = 0.0

    async def load(self, force: bool = False) -> Access:
        from kubernetes_asyncio.client import Configuration

        first = self.loader is None
        if first:
            timeout = exec_timeout()
            paths = self._check_files()
            # Read off the event loop (files on a network home directory can be slow).
            config = await asyncio.to_thread(_merged, paths)
            if self.context is not None:
                self._check_context(config)
            # config_base_path None: relative paths are taken from the file that names them. No persister:
            # a refreshed OIDC or GCP token is never written back to the user's file.
            self.loader = _loader_class()(
                config_dict=config, active_context=self.context, config_base_path=None
            )
            self.loader.exec_timeout = timeout
            user = self.loader._user  # the context's user entry (the loader's own refresh_token reads it)
            self._exec = user is not None and "exec" in user
            self._token_file = user is not None and "tokenFile" in user and "token" not in user
            self.renewable = self._exec or self._token_file
        elif force:
            # Its exec credential is cached until its expirationTimestamp: refused, it must be fetched again.
            self.loader.__dict__.pop("exec_plugin_expiry", None)
        configuration = Configuration()
        with _LoaderLog() as complaints:
            await self.loader.load_and_set(configuration)
        if complaints:
            # What the loader logs and goes on from (a plugin's answer with neither token nor certificate).
            if first:
                raise ConfigError(complaints[0])
            log.warning("loading the API credentials again", source=self.paths_text, problem=complaints[0])
        self._loaded_at = time.monotonic()
        self._expiry = getattr(self.loader, "exec_plugin_expiry", None) if self._exec else None
        return _access(configuration)

    def _check_context(self, config: Any) -> None:
        # kubectl: error: context "x" does not exist. The names are listed, since they are what to pass.
        entries = [getattr(c, "value", c) for c in config.value.get("contexts") or []]  # ConfigNodes
        names = [str(c.get("name")) for c in entries if isinstance(c, dict)]
        if self.context not in names:
            known = ", ".join(names) if names else "none"
            raise ConfigError(f"context {self.context!r} not found; the contexts there: {known}")

    def _check_files(self) -> list[str]:
        """The files to merge. Of a list, those missing are left out, as client-go's loader skips them;
        the one file given must be there."""
        if not self.paths:
            raise ConfigError("no kubeconfig file given")
        if len(self.paths) == 1:
            if not os.path.isfile(self.paths[0]):
                raise ConfigError("not found")
            return self.paths
        there = [path for path in self.paths if os.path.isfile(path)]
        if not there:
            raise ConfigError("none of these files is there")
        return there

    def renew_at(self) -> float:
        if self._expiry is not None:
            left = (self._expiry - dt.datetime.now(dt.UTC)).total_seconds()
            return self._loaded_at + max(MIN_RENEWAL_INTERVAL_S, left - min(EXPIRY_MARGIN_S, left / 2))
        if self._token_file:
            return self._loaded_at + TOKEN_FILE_PERIOD_S
        return float("inf")  # an exec credential without expiry is kept until the server refuses it


class _InCluster(_Source):
    renewable = True

    def __init__(self) -> None:
        self._loaded_at = 0.0

    async def load(self, force: bool = False) -> Access:
        from kubernetes_asyncio.client import Configuration
        from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise ConfigError("KUBERNETES_SERVICE_HOST is unset (not in a pod): pass --kubeconfig")
        configuration = Configuration()
        loader = InClusterConfigLoader(
            token_filename=str(SERVICE_ACCOUNT_DIR / "token"),
            cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
            try_refresh_token=False,  # we read the token file again ourselves (renew_at)
        )
        await asyncio.to_thread(loader.load_and_set, configuration)  # reads files: off the event loop
        self._loaded_at = time.monotonic()
        return _access(configuration)

    def renew_at(self) -> float:
        return self._loaded_at + TOKEN_FILE_PERIOD_S

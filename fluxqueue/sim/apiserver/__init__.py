"""An in-process Kubernetes API server emulator (contract C1).

``APIServer`` serves the REST API over HTTPS for real clients (kubectl 1.35, helm 4.1, kubernetes-asyncio, the
official ``kubernetes`` client, whose own end-to-end tests pass against it but for those that need a container
runtime: exec, attach and port forwarding answer a Status saying the simulator does not support them) and
offers ``api.client``, an in-process client going through the very same request pipeline::

    from fluxqueue.sim.apiserver import APIServer, APIError
    from fluxqueue.sim.apiserver import resources as R

    api = APIServer()                       # APIServer(tls=False) for plain HTTP
    await api.start(host="127.0.0.1", port=0)
    api.write_kubeconfig(path)              # admin token + the generated CA
    api.register_service("fluxqueue-system", "fluxqueue-webhook", 443, "https://127.0.0.1:9443")
    pod = await api.client.create(R.PODS, body, namespace="default")
    async for ev in api.client.watch(R.PODS, resource_version=rv): ...
    await api.stop()

Layout: ``engine`` is the request pipeline (create/get/list/update/patch/delete/watch in the order of the real
handlers); ``store`` keeps objects, the resourceVersion counter, the bounded event history and the watchers;
``resources`` names the served types; per-type rules live in ``podrules``, ``workloads``, ``coretypes``,
``builtin_admission``, ``crd`` and ``tokens`` (service account tokens); ``admission`` calls webhooks; ``patch`` and ``fieldmanager`` implement
the patch formats and server-side apply; ``http``, ``discovery``, ``openapi``, ``tables`` and ``protobuf``
are the wire side; ``tls`` makes the CA and serving certificate.
"""

from .errors import APIError
from .server import APIServer

__all__ = ["APIError", "APIServer"]

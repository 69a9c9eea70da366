"""A real Gateway API implementation for the real-node tests: Traefik, built from its Go module
(hack/install-tools.sh traefik, through hack/traefik), with its Kubernetes Gateway provider.

It runs as a process of the node (the host's network namespace, as kube-proxy and the kubelet
do), reads the GatewayClass, Gateway and HTTPRoute of one namespace through the API server, and
proxies each request it takes on the node's bridge address to a pod of the backend Services the
HTTPRoute names (their EndpointSlices), split by the backendRefs' weights. A client on the node
reaches it at `url`; nothing listens beyond the bridge and loopback.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import kubernetes
import yaml

from support.devtools import built_tool
from support.process import LoggedServer
from support.prometheus import free_port

# Traefik's GatewayClass controller name (its kubernetesGateway provider).
CONTROLLER_NAME = "traefik.io/gateway-controller"


@dataclass
class TraefikGateway(LoggedServer):
    """Traefik serving the Gateways of `namespace` on `host:port`; use as a context manager."""

    workdir: Path
    kubeconfig: Path
    namespace: str
    host: str
    port: int = field(default_factory=free_port)
    # Traefik's own ping endpoint, for readiness: loopback only.
    ping_port: int = field(default_factory=free_port)
    what: ClassVar[str] = "traefik"
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def objects(self, name: str) -> list[dict[str, Any]]:
        """A GatewayClass for this Traefik and a Gateway `name` in the namespace with one HTTP
        listener on Traefik's port, taking routes of its own namespace."""
        return [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": self.gateway_class},
                "spec": {"controllerName": CONTROLLER_NAME},
            },
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {
                    "gatewayClassName": self.gateway_class,
                    # Traefik serves a listener on the entry point of the same port.
                    "listeners": [
                        {
                            "name": "web",
                            "protocol": "HTTP",
                            "port": self.port,
                            "allowedRoutes": {"namespaces": {"from": "Same"}},
                        }
                    ],
                },
            },
        ]

    @property
    def gateway_class(self) -> str:
        # GatewayClasses are cluster-wide: one per test namespace, so runs never share one.
        return f"traefik-{self.namespace}"

    def wait_for_route(self, api: kubernetes.client.ApiClient, name: str, timeout: float = 60.0) -> None:
        """Waits until Traefik has taken the HTTPRoute's current generation: it reports Accepted
        for that generation once the route is in its configuration."""
        routes = kubernetes.client.CustomObjectsApi(api)
        deadline = time.monotonic() + timeout
        route: dict[str, Any] = {}
        while time.monotonic() < deadline:
            route = routes.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", name
            )
            current = ("Accepted", "True", route["metadata"]["generation"])
            parents = route.get("status", {}).get("parents", [])
            conditions = [c for parent in parents for c in parent.get("conditions", [])]
            if current in [(c["type"], c["status"], c.get("observedGeneration")) for c in conditions]:
                # Traefik writes the status as it hands the configuration on (throttled by 100 ms).
                time.sleep(1)
                return
            time.sleep(0.5)
        status = route.get("status")
        raise TimeoutError(f"Traefik never accepted HTTPRoute {name}: {status}\n{self.log_tail()}")

    def start(self, ready_timeout: float = 60.0) -> None:
        config = self.workdir / "traefik.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(self._config()))
        self._launch(
            [str(built_tool("traefik")), f"--configFile={config}"],
            f"http://127.0.0.1:{self.ping_port}/ping",
            ready_timeout,
            # The provider reads the cluster through KUBECONFIG when it runs outside a pod.
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )

    def _config(self) -> dict[str, Any]:
        return {
            "entryPoints": {
                "web": {"address": f"{self.host}:{self.port}"},
                "ping": {"address": f"127.0.0.1:{self.ping_port}"},
            },
            "ping": {"entryPoint": "ping"},
            "providers": {
                # Apply each change at once (the default waits 2 s for more to batch them).
                "providersThrottleDuration": "100ms",
                "kubernetesGateway": {
                    "namespaces": [self.namespace],
                    # The Gateway's status names the address its clients use.
                    "statusAddress": {"ip": self.host},
                },
            },
            "log": {"level": "INFO"},
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        }

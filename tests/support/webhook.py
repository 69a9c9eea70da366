"""A real validating admission webhook on loopback that holds one chosen write open.

A slow admission webhook is what stretches a write in real clusters (policy engines, quota
checks); here it gives a test the moment a client is inside one write, to kill the client then:
the API server calls the webhook for every matching write in `namespace`, the webhook answers
"allowed" at once, except for the first one `hold(request)` picks, which it keeps until the test
calls `release()`. The API server reaches it over HTTPS with a self-signed certificate (openssl)
as its caBundle; failurePolicy Ignore, so a webhook gone never blocks the cluster.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from support.cluster import Kube
from support.prometheus import free_port

Request = dict[str, Any]
HOLD_LIMIT_SECONDS = 25  # under the API server's 30 s cap on a webhook call


class HoldingWebhook:
    def __init__(
        self,
        kube: Kube,
        workdir: Path,
        namespace: str,
        rule: tuple[str, str, str],
        hold: Callable[[Request], bool],
    ) -> None:
        """`rule` is (apiGroup, apiVersion, resource) of the UPDATEs to see; `hold` picks one."""
        self.kube = kube
        self.workdir = workdir
        self.namespace = namespace
        self.rule = rule
        self.hold = hold
        self.name = f"modelramp-test-hold-{uuid.uuid4().hex[:8]}"
        self.held = threading.Event()
        self.held_request: Request | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def release(self) -> None:
        self._release.set()

    def _decide(self, request: Request) -> None:
        with self._lock:
            take = not self.held.is_set() and self.hold(request)
            if take:
                self.held_request = request
                self.held.set()
        if take:
            self._release.wait(HOLD_LIMIT_SECONDS)

    def __enter__(self) -> Self:
        cert, key = self.workdir / "webhook.crt", self.workdir / "webhook.key"
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                webhook._decide(review["request"])
                answer = {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": review["request"]["uid"], "allowed": True},
                }
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        group, version, resource = self.rule
        config = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self.name},
            "webhooks": [
                {
                    "name": "hold.modelramp.dev",
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{port}/validate",
                        "caBundle": base64.b64encode(cert.read_bytes()).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": [group],
                            "apiVersions": [version],
                            "resources": [resource],
                            "operations": ["UPDATE"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
                    "failurePolicy": "Ignore",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 30,
                }
            ],
        }
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(config))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release.set()
        self.kube.kubectl("delete", "validatingwebhookconfiguration", self.name, "--ignore-not-found")
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

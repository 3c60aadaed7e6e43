"""Prometheus metrics of one server (its own registry, so several apps in one process do not collide)."""

from __future__ import annotations


class Metrics:
    """Requests, latency, tokens per model role, draft batch sizes, requests in flight and refusals."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cowest_requests", "Chat-completion requests by model and HTTP status",
                                ["model", "status"], registry=r)
        self.latency = Histogram("cowest_request_seconds", "Time to answer a chat-completion request", ["model"],
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r)
        self.tokens = Counter("cowest_tokens", "Tokens by model role (weak, strong) and kind (prompt, completion)",
                              ["role", "kind"], registry=r)
        self.batch_size = Histogram("cowest_draft_batch_size", "Drafts per weak-model call", ["variant"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.in_flight = Gauge("cowest_in_flight_requests", "Requests admitted and not yet answered", registry=r)
        self.rejected = Counter("cowest_rejected", "Requests refused before any model call, by reason", ["reason"],
                                registry=r)

    def count_tokens(self, usage: dict[str, dict[str, int]]) -> None:
        """Add one request's per-role usage ({'weak': {'prompt_tokens': ..}, 'strong': {..}})."""
        for role, u in usage.items():
            self.tokens.labels(role, "prompt").inc(u.get("prompt_tokens", 0))
            self.tokens.labels(role, "completion").inc(u.get("completion_tokens", 0))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

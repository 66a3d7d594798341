"""Every knob of the controller in one place, from flags or environment (kopf's ``OperatorSettings`` idea)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxqueue.errors import ConfigError

STRATEGIES = ("easy", "fcfs", "conservative")
QUEUE_ADMISSIONS = ("nodes", "quota")  # node-aware (the default) | quota arithmetic alone (Kueue's)
POLICIES = (
    "first", "firstnodex", "high", "low", "lonode", "hinode", "lonodex", "hinodex", "locality", "variation"
)  # fmt: skip


def valid_policy(policy: str) -> bool:
    """A policy flux-sched 0.54 names, or a custom policy string as flux-sched defines its own
    ("policy=high node_centric=true stop_on_1_matches=true"): key=value words, checked in full by Fluxion's
    Init."""
    words = policy.split()
    return policy in POLICIES or (bool(words) and all("=" in w and w.split("=", 1)[0] for w in words))


@dataclass
class ControllerSettings:
    kubeconfig: str | None = None  # None: in-cluster service account
    context: str | None = None  # the kubeconfig context (None: its current-context)
    dsn: str = ""
    fluxion_address: str = "127.0.0.1:4242"
    strategy: str = "easy"
    policy: str = "first"
    # fluxqueue's own namespace (its Lease lives there; its pods are never queued).
    namespace: str = "fluxqueue-system"
    skip_namespaces: tuple[str, ...] = ()
    # The admission webhook served by every replica (None = do not serve it; 0 = any free port).
    webhook_host: str = "0.0.0.0"
    webhook_port: int | None = 9443
    webhook_cert_file: str | None = None
    webhook_key_file: str | None = None
    # Manage the webhook certificate (Secret + caBundle) with fluxqueue.certs when no files are given.
    manage_certs: bool = False
    webhook_service: str = "fluxqueue-webhook"  # names the certificate: <service>.<namespace>.svc
    webhook_configuration: str = "fluxqueue-webhook"  # MutatingWebhookConfiguration whose caBundle we keep
    webhook_secret: str = "fluxqueue-webhook-tls"
    webhook_extra_dns: tuple[str, ...] = ()
    webhook_extra_ips: tuple[str, ...] = ()
    metrics_port: int = 0  # 0 = no metrics server
    metrics_host: str = "0.0.0.0"
    # Client-side API rate. Placing a pod costs about 7 requests (FluxJob, its status, events, gate removal,
    # binding), so 500/s sustains ~70 pods/s; client-go's default (5/s) would throttle a scheduler to one.
    qps: float = 500.0
    burst: int = 1000
    default_duration: int = 3600  # seconds, when a workload does not say
    group_timeout: float = 300.0  # seconds a pod group may wait for its members; 0 = forever
    memory_chunk: int = 2**30  # bytes per memory vertex in the graph
    pass_interval: float = 5.0  # periodic safety pass, seconds
    sweep_interval: float = 10.0  # reconcile sweep, seconds
    # Bring Fluxion's "now" forward (re-Init + replay with remaining times) at most this often, when units wait.
    time_resync: float = 30.0
    # Status writes per second for waiting units (their first "Queued" and later queue positions), from the head
    # of the queue down; 0 = unlimited. Placements, starts and ends are always written at once.
    waiting_status_rate: float = 50.0
    waiting_status_burst: int = 200
    # Units matched per pass at most (flux-sched qmanager's queue-depth); 0 = the whole queue.
    queue_depth: int = 64
    # Workload seconds per wall second: 1 in a real cluster; the simulator's time scale under `fluxqueue sim`
    # (durations and reservation start times are then converted with it).
    time_scale: float = 1.0
    leader_election: bool = True
    lease_name: str = "fluxqueue-scheduler"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str | None = None
    install_crd: bool = True  # create the FluxJob CRD when absent (the chart installs it in production)
    priority_classes: dict[str, int] = field(default_factory=dict)
    # Tenant queues: how fast past usage is forgotten by fair share (workload seconds; 0 = no memory).
    queue_half_life: float = 3600.0
    # Tenant queue admission: "nodes" (a unit holds quota only once Fluxion places it on real nodes) or
    # "quota" (Kueue's way, for comparison: a unit holds quota as soon as the arithmetic allows, placeable
    # or not, and keeps holding it while it waits for nodes).
    queue_admission: str = "nodes"

    def validate(self) -> ControllerSettings:
        if not self.dsn:
            raise ConfigError("no database given: pass --dsn or set FLUXQUEUE_DSN")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        if not valid_policy(self.policy):
            raise ConfigError(
                f"unknown match policy {self.policy!r}: choose one of {', '.join(POLICIES)}, or give a custom "
                "policy string such as 'policy=high node_centric=true stop_on_1_matches=true'"
            )
        if ":" not in self.fluxion_address:
            raise ConfigError(f"--fluxion-address must be host:port, got {self.fluxion_address!r}")
        if self.qps <= 0 or self.burst < 1:
            raise ConfigError("--qps must be > 0 and --burst >= 1")
        if self.queue_half_life < 0:
            raise ConfigError("--queue-half-life must be 0 (no memory) or a positive number of seconds")
        if self.queue_admission not in QUEUE_ADMISSIONS:
            raise ConfigError(
                f"unknown queue admission {self.queue_admission!r}: choose one of {', '.join(QUEUE_ADMISSIONS)}"
            )
        if self.default_duration <= 0:
            raise ConfigError("--default-duration must be a positive number of seconds")
        if self.time_scale <= 0:
            raise ConfigError("time_scale must be positive")
        if self.memory_chunk < 2**20:
            raise ConfigError("--memory-chunk must be at least 1Mi")
        if bool(self.webhook_cert_file) != bool(self.webhook_key_file):
            raise ConfigError("--webhook-cert and --webhook-key go together")
        return self

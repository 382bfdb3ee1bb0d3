"""The [ml2_dclab] options of neutron-server's configuration."""

import os

from oslo_config import cfg

from networking_dclab import translate

GROUP = "ml2_dclab"

OPTS = [
    cfg.StrOpt("coordinator", default="https://127.0.0.1:7400",
               help="URL of the dclab coordinator: https://HOST:PORT (mutual TLS "
                    "with an operator certificate) or http://HOST:PORT for a "
                    "coordinator started with --insecure (tests only)."),
    cfg.StrOpt("pki_dir", default="/etc/dclab/pki",
               help="Directory of the certificates as `ctl certs init` writes them."),
    cfg.StrOpt("ca", help="CA certificate. Default: PKI_DIR/ca.crt."),
    cfg.StrOpt("cert", help="Operator certificate. Default: PKI_DIR/operator.crt."),
    cfg.StrOpt("key", help="Operator private key. Default: PKI_DIR/operator.key."),
    cfg.FloatOpt("timeout", default=10.0, min=0.1,
                 help="Seconds each coordinator call may take."),
    cfg.FloatOpt("validate_timeout", default=5.0, min=0.1,
                 help="Seconds a subnet create waits for the coordinator's "
                      "verdict inside Neutron's transaction; past it the subnet "
                      "is accepted and pushed through the journal."),
    cfg.StrOpt("bridge", default="br-dclab",
               help="The OvS bridge of the dclab agent on every host; port "
                    "binding hands it to nova."),
    cfg.StrOpt("datapath_type", default="system",
               help="The bridge's datapath type (system, or netdev for a "
                    "userspace OvS). os-vif sets it on the bridge it plugs "
                    "into, so it must be what the agent's bridge uses."),
    cfg.ListOpt("network_types", default=list(translate.DEFAULT_NETWORK_TYPES),
                help="Segment types the driver binds and mirrors into dclab. "
                     "Their segmentation ids are ignored: dclab's rewrite rules "
                     "isolate the networks."),
    cfg.DictOpt("host_map", default={},
                help="binding:host_id -> dclab host id, as host:id pairs; a "
                     "host not listed keeps its name."),
    cfg.FloatOpt("sync_interval", default=60.0, min=1.0,
                 help="Seconds between full comparisons of Neutron and the coordinator."),
    cfg.FloatOpt("journal_poll_interval", default=0.2, min=0.02,
                 help="Seconds between looks for changes other neutron-server "
                      "processes committed, while the journal worker is idle."),
    cfg.FloatOpt("retry_max_interval", default=30.0, min=0.1,
                 help="Longest wait between retries while the coordinator is down."),
]


def register(conf=cfg.CONF):
    conf.register_opts(OPTS, group=GROUP)
    return conf[GROUP]


def tls_files(group):
    """(ca, cert, key) with the pki_dir defaults filled in."""
    return (group.ca or os.path.join(group.pki_dir, "ca.crt"),
            group.cert or os.path.join(group.pki_dir, "operator.crt"),
            group.key or os.path.join(group.pki_dir, "operator.key"))


def list_opts():
    """For oslo-config-generator."""
    return [(GROUP, OPTS)]

//! Generators of hostile and plausible requests, shared by the suites
//! that throw them at a coordinator (and at ctl).

use dclab_proto::v1;
use proptest::prelude::*;

/// Strings that have broken parsers before: empty, huge, control
/// characters, path tricks, format strings, near-miss addresses.
pub fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => short_hostile_string(),
        1 => (1000usize..300_000).prop_map(|n| "x".repeat(n)),
    ]
}

const SAMPLES: [&str; 27] = [
    "",
    " ",
    "t",
    "n",
    "big",
    "h1",
    "p0",
    "../etc/passwd",
    "a/b",
    "host/h1",
    "%s%n%x",
    "\0",
    "\u{202e}x",
    "${port:p0}",
    "10.0.0.5",
    "10.0.0.999",
    "10.0.0.0/99",
    "300.1.1.1/24",
    "10.0.0.0/24",
    "0.0.0.0/0",
    "10.0.0.255",
    "02:00:00:00:00:05",
    "02:00:00:00:00:1ff",
    "ff:ff:ff:ff:ff:ff",
    "-1",
    "4294967296",
    "1e400",
];

/// `hostile_string` without its strings of hundreds of kilobytes.
pub fn short_hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(SAMPLES.to_vec()).prop_map(String::from),
        2 => "[a-z0-9._-]{1,12}",
        2 => any::<String>(),
    ]
}

/// Mostly plausible names and values, so some specs get past the first
/// check and reach placement and addressing. No real image name: accepted
/// labs must not boot VMs here (libvirtd may be up for another test).
pub fn lab_word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["lab", "l-2", "lan", "wan", "a", "b", "h1", "10.0.0.0/24", "10.0.0.7", ""]).prop_map(String::from),
        2 => hostile_string(),
    ]
}

pub fn lab_spec() -> impl Strategy<Value = v1::LabSpec> {
    let node = (
        lab_word(),
        prop_oneof![Just(1u32), any::<u32>()],
        prop_oneof![Just(128u64), any::<u64>()],
        lab_word(),
        prop::collection::vec(any::<u64>(), 0..3),
        lab_word(),
        prop::collection::vec((lab_word(), lab_word()), 0..3),
        prop_oneof![Just(1i32), Just(0), Just(2), any::<i32>()],
    )
        .prop_map(
            |(name, vcpus, memory_mib, image, disks_mib, host, nics, kind)| v1::NodeSpec {
                name,
                role: String::new(),
                vcpus,
                memory_mib,
                image,
                disks_mib,
                host,
                interfaces: nics
                    .into_iter()
                    .map(|(network, ip)| v1::InterfaceSpec { network, ip })
                    .collect(),
                kind,
            },
        );
    (
        lab_word(),
        prop::collection::vec((lab_word(), lab_word()), 0..3),
        prop::collection::vec(node, 0..4),
        prop::collection::vec(hostile_string(), 0..2),
    )
        .prop_map(|(name, nets, nodes, ssh_keys)| v1::LabSpec {
            name,
            networks: nets
                .into_iter()
                .map(|(name, cidr)| v1::LabNetwork {
                    name,
                    cidr,
                    kind: v1::NetworkKind::Rewrite.into(),
                })
                .collect(),
            nodes,
            ssh_keys,
        })
}

/// Mostly one of `good`, now and then one of `bad`.
fn mostly<T: Clone + std::fmt::Debug + 'static>(good: Vec<T>, bad: Vec<T>) -> impl Strategy<Value = T> {
    prop_oneof![12 => prop::sample::select(good), 1 => prop::sample::select(bad)]
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// Labs that are valid or a small step from it: every limit on both of its
/// sides, so a checker that disagrees on one of them shows.
pub fn plausible_lab_spec() -> impl Strategy<Value = v1::LabSpec> {
    let node = (
        mostly(
            words(&["a", "b", "node-1", "x_y"]),
            words(&["a.b", "-a", &"n".repeat(33)]),
        ),
        mostly(vec![1u32, 2, 64], vec![0, 65]),
        mostly(vec![64u64, 128, 1 << 20], vec![63, (1 << 20) + 1]),
        mostly(words(&["nope", "img-2"]), words(&["", "a b"])),
        prop::collection::vec(mostly(vec![1u64, 1024, 4 << 20], vec![0, (4 << 20) + 1]), 0..3),
        mostly(words(&["", "h1"]), words(&["h 1"])),
        prop::collection::vec(
            (
                mostly(words(&["lan"]), words(&["wan"])),
                mostly(
                    words(&["", "10.0.0.5", "10.0.0.6"]),
                    words(&["10.0.1.5", "10.0.0.0", "x"]),
                ),
            ),
            0..2,
        ),
        mostly(vec![1i32, 0], vec![2, 9]),
    )
        .prop_map(
            |(name, vcpus, memory_mib, image, disks_mib, host, nics, kind)| v1::NodeSpec {
                name,
                role: String::new(),
                vcpus,
                memory_mib,
                image,
                disks_mib,
                host,
                interfaces: nics
                    .into_iter()
                    .map(|(network, ip)| v1::InterfaceSpec { network, ip })
                    .collect(),
                kind,
            },
        );
    (
        mostly(words(&["lab", "l-2"]), words(&["lab.x", &"l".repeat(25)])),
        mostly(words(&["10.0.0.0/24"]), words(&["10.0.0.0/31", "10.0.0.1/24"])),
        prop::collection::vec(node, 0..3),
        prop::collection::vec(
            mostly(words(&["ssh-ed25519 AAAA a@b"]), words(&["not a key"])),
            0..2,
        ),
    )
        .prop_map(|(name, cidr, nodes, ssh_keys)| v1::LabSpec {
            name,
            networks: vec![v1::LabNetwork {
                name: "lan".into(),
                cidr,
                kind: v1::NetworkKind::Rewrite.into(),
            }],
            nodes,
            ssh_keys,
        })
}

/// The built-in experiments, as shipped.
pub const BUILTIN_EXPERIMENTS: [&str; 8] = [
    include_str!("../../examples/experiments/node-crash.toml"),
    include_str!("../../examples/experiments/freeze.toml"),
    include_str!("../../examples/experiments/partition.toml"),
    include_str!("../../examples/experiments/network-delay.toml"),
    include_str!("../../examples/experiments/controller-crash.toml"),
    include_str!("../../examples/experiments/controller-crash-power-off.toml"),
    include_str!("../../examples/experiments/token-loss.toml"),
    include_str!("../../examples/experiments/compute-unreachable.toml"),
];

/// Lines that break an experiment file in ways the parser must name:
/// undefined targets, bad units, unknown fields and kinds, out-of-range
/// numbers, a heal before its fault, broken TOML.
const BAD_EXPERIMENT_LINES: [&str; 16] = [
    "on = \"ghost\"",
    "wait = \"-5s\"",
    "wait = \"10 parsecs\"",
    "delay = \"1e400ms\"",
    "fault = \"meteor-strike\"",
    "samples = 0",
    "tolerance = 4294967296",
    "heal = \"never-applied\"",
    "pick = \"random:0\"",
    "pick = \"random:99999999999\"",
    "[[stage]]",
    "[[stage.step]]\nexec = \"\"",
    "expect = \"within forever\"",
    "interval = \"0ms\"",
    "size = \"99999999TiB\"",
    "unknown_field = 1",
];

/// Experiment files: the built-ins as they are, wholly hostile strings,
/// built-ins cut short, and built-ins with a bad line spliced in somewhere.
pub fn experiment_text() -> impl Strategy<Value = String> {
    let builtin = prop::sample::select(BUILTIN_EXPERIMENTS.to_vec());
    prop_oneof![
        2 => builtin.clone().prop_map(String::from),
        2 => hostile_string(),
        1 => (builtin.clone(), any::<prop::sample::Index>()).prop_map(|(text, cut)| {
            let at = cut.index(text.len() + 1);
            text[..text.floor_char_boundary(at)].to_string()
        }),
        4 => (
            builtin,
            any::<prop::sample::Index>(),
            prop::sample::select(BAD_EXPERIMENT_LINES.to_vec()),
        )
            .prop_map(|(text, at, bad)| {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.insert(at.index(lines.len() + 1), bad);
                lines.join("\n")
            }),
    ]
}
